"""Timing helpers shared by the benchmarks: clocks, best of repeats, median of repeats, and
the matrix-product floor of a network's training step."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def clock() -> tuple[float, float]:
    """(wall, CPU time of this process) now."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) since ``start``; the CPU time is less
    disturbed by other work on a shared machine."""
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def best_of(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(shortest wall time of ``repeats`` calls of ``fn``, the last call's value)."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value  # type: ignore[return-value]


def median_seconds(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    """(in_features, out_features) of every ``nn.Linear`` inside ``module``."""
    return [
        (m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)
    ]


def matmul_seconds(
    shapes: list[tuple[int, int]], batch: int, *, repeats: int = 20
) -> tuple[float, float]:
    r"""Time of the pure matrix products one training step of these linear layers needs.

    Per layer with input :math:`X \in \mathbb R^{B \times i}` and weight
    :math:`W \in \mathbb R^{o \times i}`: the forward :math:`X W^\top`, and the two backward
    products :math:`\partial X = \partial Y\, W` and :math:`\partial W = \partial Y^\top X`;
    :math:`6 B i o` floating-point operations in all. Returns (median seconds for all layers,
    FLOPs).
    """
    generator = torch.Generator().manual_seed(0)
    tensors = [
        (
            torch.randn(batch, i, generator=generator),
            torch.randn(o, i, generator=generator),
            torch.randn(batch, o, generator=generator),
        )
        for i, o in shapes
    ]

    def products() -> None:
        for x, w, dy in tensors:
            x @ w.T
            dy @ w
            dy.T @ x

    flops = float(sum(6 * batch * i * o for i, o in shapes))
    return median_seconds(products, repeats=repeats, warmup=3), flops


def training_step_seconds(
    model: Any, x: torch.Tensor, lr: float, *, seed: int = 0, steps: int = 20, repeats: int = 7
) -> float:
    """Median seconds of one ``model.training_step`` on the batch ``x`` (forward, backward,
    the optimizer's step and whatever the family does after it), ``steps`` per timed repeat.

    The model trains on (its weights move); it is left in eval mode.
    """
    from genlab.train.config import TrainConfig
    from genlab.train.optim import Optimizers

    model.train()
    config = TrainConfig(steps=1, lr=lr, batch_size=len(x))
    optimizers = Optimizers(model.configure_optimizers(config))
    generator = torch.Generator().manual_seed(seed)

    def run() -> None:
        for _ in range(steps):
            model.training_step(x, optimizers, generator)

    seconds = median_seconds(run, repeats=repeats) / steps
    model.eval()
    return seconds
