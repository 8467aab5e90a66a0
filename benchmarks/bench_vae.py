"""genlab's VAE against pythae's VAE: training throughput and test bound after the same epochs.

Same data, same architecture, same likelihood, measured in one process:

- data: 10,000 (``--quick``: 2,500) synthetic 28x28 uint8 images with MNIST's shape and values {0, 255} (scikit-learn's
  8x8 digits, upsampled to 20x20, placed at a random offset in a 28x28 frame and thresholded:
  a binarised-MNIST stand-in that needs no download), 8,000 for training and 2,000 for test;
- architecture: pythae's default MLP for 28x28 (``Encoder_VAE_MLP``: 784-512-(16, 16);
  ``Decoder_AE_MLP``: 16-512-784), latent 16, ReLU; genlab's ``hidden=(512,)``, the same layers;
- likelihood: Bernoulli on {0, 1} pixels for both (pythae ``reconstruction_loss="bce"``; genlab
  ``likelihood="bernoulli"``), Adam with lr 1e-3, batch 128, no validation split, no early stop;
- throughput: training examples per second of each library's own training entry point
  (``genlab.fit``; pythae's ``TrainingPipeline``), best of ``repeats`` interleaved runs, per
  wall-clock second and per CPU second of the process (the latter is less disturbed by other
  work on a shared machine);
- bound: the importance-weighted bound (k=100, same estimator and noise for both, computed from
  each model's encoder and decoder) on the 2,000 test images, in nats per image.

A hand-written loop of the same step (fused Adam, no extra passes) is timed as a reference for
what the arithmetic allows on the machine. Timings on a shared machine are noisy; compare
genlab and pythae only within one run.

The hardware limit (issue 7): genlab's training step alone (``model.training_step`` on one batch
of 128, its fused Adam included; median of 7 repeats of 20 steps) against the pure matrix
products its linear layers need (``benchmarks.timing.matmul_seconds``, the floor for this
architecture), with the GFLOP/s each achieves.

Run: ``python -m benchmarks --only vae`` (needs the ``bench`` extra: pythae).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import genlab
from benchmarks.report import ratio
from benchmarks.timing import (
    clock,
    elapsed,
    linear_shapes,
    matmul_seconds,
    training_step_seconds,
)
from genlab.data import DataInfo, Dataset
from genlab.objectives import iw_bound, log_importance_weights, log_standard_normal

NAME = "vae"
TITLE = "VAE on 28x28 binary images, pythae's default MLP (784-512-16), batch 128"
LATENT, BATCH, LR = 16, 128, 1e-3


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n_train, 1, 28, 28)`` and ``(n_test, 1, 28, 28)`` uint8 arrays with values {0, 255}."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = torch.from_numpy(load_digits().images).float().unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    n = n_train + n_test
    pick = torch.from_numpy(rng.integers(len(digits), size=n))
    big = F.interpolate(digits[pick], size=(20, 20), mode="bilinear", align_corners=False)
    out = torch.zeros(n, 1, 28, 28)
    offsets = rng.integers(0, 9, size=(n, 2))
    for i, (r, c) in enumerate(offsets):
        out[i, 0, r : r + 20, c : c + 20] = big[i, 0]
    images = ((out > 0.4).numpy() * 255).astype(np.uint8)
    return images[:n_train], images[n_train:]


def genlab_dataset(train: np.ndarray, test: np.ndarray) -> Dataset:
    info = DataInfo("synthetic-mnist", (1, 28, 28), "image", levels=256, value_range=(0.0, 255.0))
    return Dataset(torch.from_numpy(train).float(), torch.from_numpy(test).float(), info)


def train_genlab(data: Dataset, epochs: int, seed: int) -> tuple[Any, tuple[float, float]]:
    started = clock()
    model = genlab.fit(
        "vae",
        data,
        likelihood="bernoulli",
        architecture="mlp",  # pythae's MLP (genlab's default at 28x28 is a conv net)
        prior="normal",  # pythae's N(0, I) (at 28x28 genlab fits a mixture after training)
        hidden=(512,),
        latent_dim=LATENT,
        batch_size=BATCH,
        lr=LR,
        epochs=epochs,
        val_fraction=0.0,
        patience=None,
        seed=seed,
    )
    return model, elapsed(started)


def train_pythae(train: np.ndarray, epochs: int, seed: int) -> tuple[Any, tuple[float, float]]:
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.ERROR)
    x = torch.from_numpy(train).float() / 255.0
    with tempfile.TemporaryDirectory() as out:
        torch.manual_seed(seed)
        model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce"))
        config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=epochs,
            learning_rate=LR,
            per_device_train_batch_size=BATCH,
            no_cuda=True,
            seed=seed,
        )
        started = clock()
        with contextlib.redirect_stderr(io.StringIO()):  # pythae's progress bars
            TrainingPipeline(model=model, training_config=config)(train_data=x)
        seconds = elapsed(started)
    return model.eval(), seconds


def train_plain(train: np.ndarray, epochs: int, seed: int) -> tuple[Any, tuple[float, float]]:
    """Reference: the same step written by hand (fused Adam, logits + BCE, no extra passes).

    Timed from the start, as ``genlab.fit`` is: the data's conversion and the networks' and
    optimiser's construction included.
    """
    started = clock()
    torch.manual_seed(seed)
    x_all = torch.from_numpy(train).float().div_(255.0).flatten(1)
    encoder = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 2 * LATENT)
    )
    decoder = torch.nn.Sequential(
        torch.nn.Linear(LATENT, 512), torch.nn.ReLU(), torch.nn.Linear(512, 784)
    )
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR, fused=True)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(x_all), generator=generator).split(BATCH):
            x = x_all[index]
            loc, log_scale = encoder(x).chunk(2, dim=1)
            eps = torch.randn(loc.shape, generator=generator)
            logits = decoder(loc + log_scale.exp() * eps)
            reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = (0.5 * (loc.square() + (2 * log_scale).exp() - 1) - log_scale).sum()
            loss = (reconstruction + kl) / len(x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return None, elapsed(started)


@torch.no_grad()
def pythae_bound(model: Any, x: torch.Tensor, k: int, seed: int) -> float:
    """The IW bound of pythae's VAE with the same estimator genlab uses (Bernoulli on {0, 1})."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for chunk in x.split(250):
        out = model.encoder(chunk)
        loc, log_scale = out.embedding, 0.5 * out.log_covariance
        eps = torch.randn(k, *loc.shape, generator=generator)
        z = loc + log_scale.exp() * eps
        probs = model.decoder(z.reshape(-1, LATENT))["reconstruction"].reshape(k, len(chunk), -1)
        target = chunk.flatten(1)
        log_lik = -F.binary_cross_entropy(probs, target.expand_as(probs), reduction="none").sum(-1)
        log_q = log_standard_normal(eps) - log_scale.sum(-1)
        total += float(
            iw_bound(log_importance_weights(log_lik, log_standard_normal(z), log_q)).sum()
        )
    return total / len(x)


@torch.no_grad()
def genlab_bound(model: Any, x: torch.Tensor, k: int, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    total = sum(float(model.log_prob(c, k=k, generator=generator).sum()) for c in x.split(250))
    # a density on the dequantised values = P(bin) / 1 (level step 1): the bound in nats per image
    return total / len(x)


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train genlab, pythae and the hand-written loop ``repeats`` times (interleaved)."""
    n_train, n_test, epochs, repeats, k = (
        (2000, 500, 1, 11, 20) if quick else (8000, 2000, 5, 2, 100)
    )
    train, test = synthetic_mnist(n_train, n_test, seed)
    data = genlab_dataset(train, test)
    # warm-up: the first optimizer step of a process imports torch._dynamo (seconds), whichever
    # library runs first would pay it
    train_genlab(genlab_dataset(train[:256], test[:16]), 1, seed)
    train_pythae(train[:256], 1, seed)
    times: dict[str, list[tuple[float, float]]] = {"genlab": [], "pythae": [], "plain": []}
    for _ in range(repeats):
        genlab_model, seconds = train_genlab(data, epochs, seed)
        times["genlab"].append(seconds)
        pythae_model, seconds = train_pythae(train, epochs, seed)
        times["pythae"].append(seconds)
        times["plain"].append(train_plain(train, epochs, seed)[1])
    examples = n_train * epochs
    x_test = torch.from_numpy(test).float()
    bounds = {
        "genlab": genlab_bound(genlab_model, x_test, k, seed),
        "pythae": pythae_bound(pythae_model, x_test / 255.0, k, seed),
        "plain": None,
    }
    rows = []
    for name, measured in times.items():
        rows.append(
            {
                "implementation": {"plain": "hand-written loop, fused Adam (reference)"}.get(
                    name, name
                ),
                "examples_per_s": examples / min(wall for wall, _ in measured),
                "examples_per_cpu_s": examples / min(cpu for _, cpu in measured),
                "seconds": [wall for wall, _ in measured],
                "test_bound_nats": bounds[name],
            }
        )
    genlab_row, pythae_row, plain_row = rows
    # the floor: the matrix products of one step (forward and both backward products)
    matmul, flops = matmul_seconds(linear_shapes(genlab_model), BATCH)
    step = training_step_seconds(genlab_model, data.x_train[:BATCH], LR, seed=seed)
    speed = genlab_row["examples_per_s"] / pythae_row["examples_per_s"]
    cpu_speed = genlab_row["examples_per_cpu_s"] / pythae_row["examples_per_cpu_s"]
    bits = [-b / (784 * math.log(2)) for b in (bounds["genlab"], bounds["pythae"])]
    return {
        "n_train": n_train,
        "epochs": epochs,
        "repeats": repeats,
        "batch_size": BATCH,
        "iw_samples": k,
        "threads": torch.get_num_threads(),
        "columns": [
            ["implementation", "implementation"],
            ["examples_per_s", "train ex/s"],
            ["examples_per_cpu_s", "train ex/CPU s"],
            ["test_bound_nats", f"test IW bound k={k} (nats)"],
        ],
        "rows": rows,
        "step_seconds": step,
        "matmul_seconds": matmul,
        "step_gflops": flops / step / 1e9,
        "matmul_gflops": flops / matmul / 1e9,
        "notes": [
            f"{n_train} images x {epochs} epochs, best of {repeats}; test bits/dim (binary): "
            f"genlab {bits[0]:.4f}, pythae {bits[1]:.4f}",
            f"genlab step {1e3 * step:.3f} ms ({flops / step / 1e9:.1f} GFLOP/s) vs its pure "
            f"matrix products {1e3 * matmul:.3f} ms ({flops / matmul / 1e9:.1f} GFLOP/s)",
        ],
        "ratios": [
            ratio("VAE train examples/s, genlab / pythae", speed, 1.6),
            ratio("VAE train examples/CPU s, genlab / pythae", cpu_speed, 1.6),
            ratio(
                "VAE hand-written fused loop / pythae (reference)",
                plain_row["examples_per_s"] / pythae_row["examples_per_s"],
            ),
            ratio("VAE step time / pure matmul time", step / matmul, 1.4, at_most=True),
            ratio(
                "VAE test IW bound, genlab - pythae (nats)",
                bounds["genlab"] - bounds["pythae"],
                0.0,
            ),
        ],
    }
