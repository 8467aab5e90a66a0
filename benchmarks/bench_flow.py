"""genlab's RealNVP flow against zuko's and normflows' on ``moons``: steps/s and test log-likelihood.

Matched size, measured in one process on the same data: 8 affine couplings whose conditioners
are 64-64 MLPs, batch 512, Adam with lr 1e-3, the same number of steps, no validation split.

- genlab: ``genlab.fit("flow", moons, n_layers=8, hidden=(64, 64), ...)`` end to end: the
  peers' layers, and genlab's recipe around them (it standardises the data, the log-Jacobian
  included, and the model is the average of the trained weights), and the same with
  ``actnorm=True`` (an ActNorm layer before each coupling, genlab's default on images);
- zuko: ``zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64))`` in a plain loop;
- normflows: its README RealNVP (``AffineCouplingBlock`` + ``Permute(swap)``, ``MLP([1, 64, 64,
  2], init_zeros=True)``, ``DiagGaussian`` base) in a plain loop.

The test log-likelihood (nats per point, 5,000 test points) is compared with the true density's
(moons is drawn from a known density).

The hardware limit (as the VAE's): genlab's training step alone (``model.training_step`` on one
batch, Adam and the weight average included; median of 7 repeats of 20 steps) against the pure
matrix products of its coupling MLPs (``benchmarks.timing.matmul_seconds``). Without
``--quick``, genlab with ``compile=True`` (``torch.compile`` of the layers for the training
steps), run twice: the first run pays the compilation (less when inductor's on-disk cache
holds the graphs of an earlier process), the second finds its graphs cached; from them, the
steps/s of compiled steps and the number of steps after which compiling pays back its cost.
Rates are per wall-clock second and per CPU second of the process (less disturbed by other
work), best of ``repeats`` interleaved runs. Timings on a
shared machine are noisy: compare genlab and the peers only within one run.

Run: ``python -m benchmarks --only flow`` (needs the ``bench`` extra: zuko, normflows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import genlab
from benchmarks.report import ratio
from benchmarks.timing import (
    clock,
    elapsed,
    linear_shapes,
    matmul_seconds,
    training_step_seconds,
)

NAME = "flow"
TITLE = "RealNVP on moons: 8 affine couplings, 64-64 MLPs, batch 512"
BATCH, LR, LAYERS, HIDDEN = 512, 1e-3, 8, (64, 64)


def _plain_loop(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    params: list[torch.nn.Parameter],
    x: torch.Tensor,
    steps: int,
    seed: int,
) -> tuple[float, float]:
    optimizer = torch.optim.Adam(params, lr=LR)
    generator = torch.Generator().manual_seed(seed)
    started = clock()
    for _ in range(steps):
        batch = x[torch.randint(len(x), (BATCH,), generator=generator)]
        loss = -log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return elapsed(started)


def train_zuko(x: torch.Tensor, steps: int, seed: int) -> tuple[Callable, tuple[float, float]]:
    import zuko

    torch.manual_seed(seed)
    flow = zuko.flows.RealNVP(2, transforms=LAYERS, hidden_features=HIDDEN)

    def log_prob(v: torch.Tensor) -> torch.Tensor:
        return flow().log_prob(v)

    return log_prob, _plain_loop(log_prob, list(flow.parameters()), x, steps, seed)


def train_normflows(
    x: torch.Tensor, steps: int, seed: int
) -> tuple[Callable, tuple[float, float]]:
    import normflows as nf

    torch.manual_seed(seed)
    layers = []
    for _ in range(LAYERS):
        layers.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, *HIDDEN, 2], init_zeros=True)))
        layers.append(nf.flows.Permute(2, mode="swap"))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2), layers)
    return model.log_prob, _plain_loop(model.log_prob, list(model.parameters()), x, steps, seed)


def fit_genlab(data: Any, steps: int, seed: int, **settings: Any) -> genlab.models.GenerativeModel:
    return genlab.fit(
        "flow",
        data,
        n_layers=LAYERS,
        hidden=HIDDEN,
        batch_size=BATCH,
        lr=LR,
        steps=steps,
        val_fraction=0.0,
        patience=None,
        seed=seed,
        **settings,
    )


def train_genlab(
    data: Any, steps: int, seed: int, actnorm: bool | None = None
) -> tuple[Callable, tuple[float, float]]:
    started = clock()
    model = fit_genlab(data, steps, seed, actnorm=actnorm)
    return model.log_prob, elapsed(started)


def train_compiled(data: Any, steps: int, seed: int) -> dict[str, Any]:
    """genlab with ``compile=True``, twice in this process: the first run's wall seconds
    (compilation included: inductor's on-disk cache may hold graphs of an earlier run), the
    second's (its graphs found in the cache), and the test LL."""
    walls = []
    for _ in range(2):
        started = clock()
        model = fit_genlab(data, steps, seed, compile=True)
        walls.append(elapsed(started)[0])
    return {"log_prob": model.log_prob, "first": walls[0], "second": walls[1]}


def hardware_limit(data: Any, seed: int) -> dict[str, float]:
    """genlab's training step against the pure matrix products of its layers (seconds)."""
    model = fit_genlab(data, 5, seed)
    matmul, flops = matmul_seconds(linear_shapes(model.layers), BATCH)
    step = training_step_seconds(model, data.x_train[:BATCH], LR, seed=seed)
    return {"step_seconds": step, "matmul_seconds": matmul, "flops": flops}


@torch.no_grad()
def test_log_likelihood(log_prob: Callable, x: torch.Tensor) -> float:
    return float(torch.cat([log_prob(c).double() for c in x.split(1000)]).mean())


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train each flow ``repeats`` times (interleaved), best time; returns rates and test LLs."""
    steps, repeats = (300, 1) if quick else (2000, 2)
    data = genlab.data.load("moons")
    x, x_test = data.x_train, data.x_test
    trainers = {
        "genlab": lambda: train_genlab(data, steps, seed),
        "genlab, actnorm=true": lambda: train_genlab(data, steps, seed, actnorm=True),
        "zuko": lambda: train_zuko(x, steps, seed),
        "normflows": lambda: train_normflows(x, steps, seed),
    }
    # warm-up: the first optimizer step of a process imports torch._dynamo (seconds)
    train_genlab(data, 5, seed)
    train_zuko(x, 5, seed)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
    log_probs: dict[str, Callable] = {}
    for _ in range(repeats):
        for name, trainer in trainers.items():
            log_probs[name], seconds = trainer()
            times[name].append(seconds)
    rows = [
        {
            "implementation": name,
            "steps_per_s": steps / min(wall for wall, _ in times[name]),
            "steps_per_cpu_s": steps / min(cpu for _, cpu in times[name]),
            "seconds": [wall for wall, _ in times[name]],
            "test_ll": test_log_likelihood(log_probs[name], x_test),
        }
        for name in trainers
    ]
    by_name = {row["implementation"]: row for row in rows}
    ours, with_actnorm = rows[0], rows[1]
    ratios = []
    for peer in ("zuko", "normflows"):
        theirs = by_name[peer]
        ratios += [
            ratio(
                f"flow steps/s, genlab / {peer}", ours["steps_per_s"] / theirs["steps_per_s"], 2
            ),
            ratio(
                f"flow steps/CPU s, genlab / {peer}",
                ours["steps_per_cpu_s"] / theirs["steps_per_cpu_s"],
                2,
            ),
            ratio(
                f"flow steps/s, genlab actnorm=true / {peer}",
                with_actnorm["steps_per_s"] / theirs["steps_per_s"],
                2,
            ),
            # issue 3: at least as close to the true density's test LL (all lie below it)
            ratio(f"flow test LL, genlab - {peer} (nats)", ours["test_ll"] - theirs["test_ll"], 0),
        ]
    limit = hardware_limit(data, seed)
    step, matmul, flops = limit["step_seconds"], limit["matmul_seconds"], limit["flops"]
    notes = [
        f"{steps} steps, best of {repeats}; true density's test LL "
        f"{float(data.true_log_prob(x_test).double().mean()):.4f} nats",
        f"genlab step {1e3 * step:.3f} ms ({flops / step / 1e9:.1f} GFLOP/s) vs its pure "
        f"matrix products {1e3 * matmul:.3f} ms ({flops / matmul / 1e9:.1f} GFLOP/s)",
    ]
    ratios.append(ratio("flow step time / pure matmul time (reference)", step / matmul))
    if not quick:
        compiled = train_compiled(data, steps, seed)
        after = steps / compiled["second"]
        rows.append(
            {
                "implementation": "genlab, compile=true (second run: graphs cached)",
                "steps_per_s": after,
                "steps_per_cpu_s": None,
                "seconds": [compiled["first"], compiled["second"]],
                "test_ll": test_log_likelihood(compiled["log_prob"], x_test),
            }
        )
        eager_seconds = steps / ours["steps_per_s"]
        saved = 1 / ours["steps_per_s"] - 1 / after  # seconds a step, compiled against eager
        cost = compiled["first"] - eager_seconds  # what compiling added to the first run
        payback = cost / saved if saved > 0 and cost > 0 else float("inf")
        notes.append(
            f"compile=true: first run {compiled['first']:.1f} s (compiling), second "
            f"{compiled['second']:.1f} s, eager {eager_seconds:.1f} s; compiling pays back "
            f"after {payback:,.0f} steps"
        )
        ratios += [
            ratio(
                f"flow steps/s after compiling, genlab compile=true / {peer}",
                after / by_name[peer]["steps_per_s"],
                2,
            )
            for peer in ("zuko", "normflows")
        ]
        ratios.append(ratio("flow steps for compile=true to pay back its compile time", payback))
    return {
        "steps": steps,
        "repeats": repeats,
        "batch_size": BATCH,
        "threads": torch.get_num_threads(),
        "true_test_ll": float(data.true_log_prob(x_test).double().mean()),
        "columns": [
            ["implementation", "implementation"],
            ["steps_per_s", "steps/s"],
            ["steps_per_cpu_s", "steps/CPU s"],
            ["test_ll", "test LL (nats)"],
        ],
        "rows": rows,
        "step_seconds": step,
        "matmul_seconds": matmul,
        "notes": notes,
        "ratios": ratios,
    }
