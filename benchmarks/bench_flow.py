"""genlab's RealNVP flow against zuko's and normflows' on ``moons``: steps/s and test log-likelihood.

Matched size, measured in one process on the same data: 8 affine couplings whose conditioners
are 64-64 MLPs, batch 512, Adam with lr 1e-3, the same number of steps, no validation split.

- genlab: ``genlab.fit("flow", moons, n_layers=8, hidden=(64, 64), ...)`` end to end (its
  recipe adds ActNorm layers and standardises the data, with the log-Jacobian included), and
  the same with ``actnorm=False`` (exactly the peers' layers);
- zuko: ``zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64))`` in a plain loop;
- normflows: its README RealNVP (``AffineCouplingBlock`` + ``Permute(swap)``, ``MLP([1, 64, 64,
  2], init_zeros=True)``, ``DiagGaussian`` base) in a plain loop.

The test log-likelihood (nats per point, 5,000 test points) is compared with the true density's
(moons is drawn from a known density). Rates are per wall-clock second and per CPU second of
the process (less disturbed by other work), best of ``repeats`` interleaved runs. Timings on a
shared machine are noisy: compare genlab and the peers only within one run.

Run: ``python -m benchmarks.bench_flow`` (needs the ``bench`` extra: zuko, normflows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

import genlab

BATCH, LR, LAYERS, HIDDEN = 512, 1e-3, 8, (64, 64)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) since ``start``."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _plain_loop(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    params: list[torch.nn.Parameter],
    x: torch.Tensor,
    steps: int,
    seed: int,
) -> tuple[float, float]:
    optimizer = torch.optim.Adam(params, lr=LR)
    generator = torch.Generator().manual_seed(seed)
    started = _clock()
    for _ in range(steps):
        batch = x[torch.randint(len(x), (BATCH,), generator=generator)]
        loss = -log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _elapsed(started)


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


def train_genlab(
    data: Any, steps: int, seed: int, actnorm: bool = True
) -> tuple[Callable, tuple[float, float]]:
    started = _clock()
    model = genlab.fit(
        "flow",
        data,
        actnorm=actnorm,
        n_layers=LAYERS,
        hidden=HIDDEN,
        batch_size=BATCH,
        lr=LR,
        steps=steps,
        val_fraction=0.0,
        patience=None,
        seed=seed,
    )
    return model.log_prob, _elapsed(started)


@torch.no_grad()
def test_log_likelihood(log_prob: Callable, x: torch.Tensor) -> float:
    return float(torch.cat([log_prob(c).double() for c in x.split(1000)]).mean())


def run(steps: int = 2000, repeats: int = 2, seed: int = 0) -> dict[str, Any]:
    """Train each flow ``repeats`` times (interleaved), best time; returns rates and test LLs."""
    data = genlab.data.load("moons")
    x, x_test = data.x_train, data.x_test
    trainers = {
        "genlab": lambda: train_genlab(data, steps, seed),
        "genlab_no_actnorm": lambda: train_genlab(data, steps, seed, actnorm=False),
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
    result: dict[str, Any] = {
        "steps": steps,
        "batch_size": BATCH,
        "threads": torch.get_num_threads(),
        "true_test_ll": float(data.true_log_prob(x_test).double().mean()),
    }
    for name in trainers:
        result[f"{name}_steps_per_s"] = steps / min(wall for wall, _ in times[name])
        result[f"{name}_steps_per_cpu_s"] = steps / min(cpu for _, cpu in times[name])
        result[f"{name}_seconds"] = [wall for wall, _ in times[name]]
        result[f"{name}_test_ll"] = test_log_likelihood(log_probs[name], x_test)
    for peer in ("zuko", "normflows"):
        result[f"ratio_vs_{peer}"] = result["genlab_steps_per_s"] / result[f"{peer}_steps_per_s"]
        result[f"cpu_ratio_vs_{peer}"] = (
            result["genlab_steps_per_cpu_s"] / result[f"{peer}_steps_per_cpu_s"]
        )
    return result


def main() -> None:
    result = run()
    print(
        f"RealNVP, 8 affine couplings, 64-64 MLPs, batch {result['batch_size']}, "
        f"{result['steps']} steps on moons, {result['threads']} threads (noisy, shared machine)"
    )
    print(
        f"{'':18s} {'steps/s':>8s} {'ratio':>6s} {'steps/CPU s':>11s} {'ratio':>6s} "
        f"{'test LL':>8s}  (true {result['true_test_ll']:.3f})"
    )
    for name in ("genlab", "genlab_no_actnorm", "zuko", "normflows"):
        rate, cpu_rate = result[f"{name}_steps_per_s"], result[f"{name}_steps_per_cpu_s"]
        ratio = result["genlab_steps_per_s"] / rate
        cpu_ratio = result["genlab_steps_per_cpu_s"] / cpu_rate
        print(
            f"{name:18s} {rate:8.1f} {ratio:6.2f} {cpu_rate:11.1f} {cpu_ratio:6.2f} "
            f"{result[f'{name}_test_ll']:8.4f}"
        )


if __name__ == "__main__":
    main()
