"""bf16 autocast and torch.compile in the training loop (genlab.train.acceleration).

Run on CPU here (autocast on CPU, inductor's C++ backend); with ``pytest --device cuda`` the
same tests run the GPU path.
"""

from __future__ import annotations

import json

import pytest
import torch

import genlab
from genlab.errors import ConfigError
from genlab.train import acceleration

# dynamo inspects .grad of the tensors it traces (a warning torch raises and dynamo itself
# handles; the suite's warnings-as-errors would turn it into a failure inside dynamo)
pytestmark = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"
)

SMALL_VAE = {"hidden": (32,), "latent_dim": 4, "batch_size": 64, "eval_every": 3}


def record_dtypes(model: torch.nn.Module, seen: list[tuple[bool, bool, torch.dtype]]) -> None:
    """Record (training mode, autocast on, output dtype) of the first linear layer's calls."""
    layer = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_hook(
        lambda module, inputs, output: seen.append(
            (module.training, torch.is_autocast_enabled(output.device.type), output.dtype)
        )
    )


def test_bf16_runs_the_training_forward_in_bf16_and_keeps_float32_weights(digits, device):
    seen: list[tuple[bool, bool, torch.dtype]] = []

    def watch(step: int, model: genlab.models.GenerativeModel) -> None:
        if not seen:  # first evaluation point: hook the layer and the optimizer from here on
            record_dtypes(model, seen)

    model = genlab.fit(
        "vae",
        digits,
        steps=9,
        seed=0,
        device=device,
        precision="bf16",
        callback=watch,
        **SMALL_VAE,
    )
    model_fp32 = genlab.fit("vae", digits, steps=9, seed=0, device=device, **SMALL_VAE)
    training = [(autocast, dtype) for train, autocast, dtype in seen if train]
    evaluation = [(autocast, dtype) for train, autocast, dtype in seen if not train]
    assert training and set(training) == {(True, torch.bfloat16)}
    # validation (and the callback) run in float32, outside autocast
    assert evaluation and set(evaluation) == {(False, torch.float32)}
    params = dict(model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    # the same run in float32 lands close by, not on the same numbers: bf16 rounds the products
    differences = [
        float((params[name] - p).detach().abs().max()) for name, p in model_fp32.named_parameters()
    ]
    assert 0 < max(differences) < 0.02


def test_bf16_backward_and_optimizer_step_run_outside_autocast(digits, device):
    flags: list[bool] = []

    def watch(step: int, model: genlab.models.GenerativeModel) -> None:
        if flags:
            return
        for p in model.parameters():
            if p.requires_grad:
                p.register_hook(
                    lambda g: flags.append(torch.is_autocast_enabled(g.device.type)) or g
                )

    genlab.fit(
        "vae",
        digits,
        steps=6,
        seed=0,
        device=device,
        precision="bf16",
        callback=watch,
        **SMALL_VAE,
    )
    assert flags and not any(flags)


def test_precision_must_be_known():
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, got 'fp16'"):
        genlab.fit("vae", "digits", steps=1, precision="fp16")


# one family of each kind of step: one loss (VAE), two players and optimizers (GAN), a chain of
# bijections with a weight average (flow)
COMPILED_CASES = {
    "vae": ("digits", SMALL_VAE),
    "gan": ("ring", {"hidden": (16,), "batch_size": 64}),
    "flow": ("moons", {"n_layers": 2, "hidden": (16,), "batch_size": 64}),
}


@pytest.mark.parametrize("family", sorted(COMPILED_CASES))
def test_compile_matches_eager_and_records_its_time(family, device, tmp_path):
    name, settings = COMPILED_CASES[family]
    data = genlab.data.load(name)
    eager = genlab.fit(family, data, steps=6, seed=0, device=device, **settings)
    compiled = genlab.fit(
        family,
        data,
        steps=6,
        seed=0,
        device=device,
        compile=True,
        out=tmp_path / "run",
        **settings,
    )
    for (name, a), (_, b) in zip(
        eager.state_dict().items(), compiled.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["compile_seconds"] > 0
    # after training the networks are plain modules again (sampling and scoring run eagerly)
    assert all("forward" not in m.__dict__ for m in compiled.modules())
    # and the run reloads as any other: the same weights under the same names
    reloaded = genlab.load(tmp_path / "run", device=device)
    for (name, a), (_, b) in zip(
        reloaded.state_dict().items(), compiled.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_compiled_networks_are_the_trainable_children():
    model = genlab.fit("flow", "moons", steps=1, n_layers=2)
    names = {n for n, m in model.named_children() if m in acceleration.compiled_networks(model)}
    assert names == {"layers"}  # the standardiser has no trainable weights; the average is frozen


@pytest.mark.parametrize(
    ("settings", "compiled"),
    [
        ({"r1_weight": 1.0}, {"generator_net"}),  # R1 differentiates D in x: D stays eager
        ({"loss": "wasserstein-gp"}, {"generator_net"}),
        ({"r1_weight": 0.0}, {"generator_net", "discriminator"}),
    ],
)
def test_networks_differentiated_twice_stay_eager(settings, compiled):
    model = genlab.fit("gan", "ring", steps=1, hidden=(8,), **settings)
    networks = acceleration.compiled_networks(model)
    assert {n for n, m in model.named_children() if m in networks} == compiled


def test_compile_without_a_cxx_compiler_fails_before_training(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(acceleration.shutil, "which", lambda name: None)
    with pytest.raises(
        ConfigError, match="needs a C\\+\\+ compiler .* or train without --compile"
    ):
        genlab.fit("vae", "digits", steps=1, compile=True, device="cpu")


def test_compile_time_counts_the_recompile_for_the_epochs_last_batch(digits, tmp_path):
    """The epoch's shorter last batch makes dynamo compile again; compile_seconds sums both."""
    genlab.fit(
        "vae", digits, steps=3, seed=0, compile=True, out=tmp_path / "run",
        **{**SMALL_VAE, "batch_size": 512},
    )  # fmt: skip
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    first, last = summary["compiled_batch_sizes"]  # batches of 512, 512, then the rest
    assert first == 512 and 0 < last < 512
    assert summary["compile_seconds"] > 0
