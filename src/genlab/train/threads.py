r"""How many CPU threads a training run uses, and why.

torch's default is one thread per core. For small models that is slower than one thread: each
kernel is too small to split, and the idle threads spin (on a busy machine a two-thread run of
the GAN on ``ring`` took four times as long as a one-thread run). So unless the user sets the
count (``--threads N`` / ``threads=N``, or the ``OMP_NUM_THREADS`` environment variable, in
that order), genlab picks it by a rule on the size of one training step:

.. math::
    n = \min\left(\text{spare},\ \max\left(1,\ \left\lfloor F / F_1 \right\rfloor\right)
    \right), \qquad \text{spare} = \max(1,\ \text{cores} - \mathrm{round}(\ell)),

where :math:`F` is the number of floating-point operations of one training step (counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on a throwaway copy of the model and one
batch: matrix products and convolutions, forward and backward) and :math:`F_1`
(:data:`FLOPS_PER_THREAD`) is the step size from which a second thread paid for itself in
``benchmarks/bench_threads.py``, and :math:`\ell` is the one-minute load average: cores busy with
other work are not counted, since a thread that waits for a busy core spins (at load 9.5 on 2
cores even a 180-GFLOP conv step ran 1.5 times faster on one thread than on two).
Closed-form fits (one large decomposition) use the spare cores.
The choice and its reason are recorded in the run's ``config.json`` (``threads``), and a resumed
run uses the recorded count, so that it computes the same numbers.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.config import check
from genlab.data.dataset import Dataset, dequantize
from genlab.models.base import GenerativeModel
from genlab.train.config import TrainConfig
from genlab.train.loop import context_rows, dequantizes
from genlab.train.optim import Optimizers

# A step of 2 GFLOP per thread: below it, a second thread was slower (benchmarks/bench_threads.py)
FLOPS_PER_THREAD = 2e9
MAX_THREADS = 1024
ThreadSource = Literal["argument", "OMP_NUM_THREADS", "rule", "run"]


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count of a run, where it came from and, for the rule, the step's FLOPs."""

    count: int
    source: ThreadSource
    step_flops: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "source": self.source, "step_flops": self.step_flops}

    @property
    def reason(self) -> str:
        """One line for the log: how many threads, and why."""
        if self.source == "rule" and self.step_flops is not None:
            return (
                f"{self.count} thread(s): a training step of {self.step_flops / 1e9:.3g} GFLOP "
                f"(one thread per {FLOPS_PER_THREAD / 1e9:.3g} GFLOP, at most the "
                f"{spare_cores()} spare cores)"
            )
        if self.source == "rule":
            return f"{self.count} thread(s): a closed-form fit uses the spare cores"
        return f"{self.count} thread(s), set by {self.source}"


def cores() -> int:
    """The CPU cores this process may run on."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def spare_cores() -> int:
    """:func:`cores` less the one-minute load average (rounded), at least 1."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, cores() - round(load))


def check_threads(threads: Any) -> int:
    """``threads`` if it is a positive integer (at most :data:`MAX_THREADS`), else a ConfigError."""
    check(
        isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= MAX_THREADS,
        f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}",
    )
    return threads


def threads_for_flops(step_flops: float, available: int) -> int:
    r""":math:`\min(\text{available}, \max(1, \lfloor F / F_1 \rfloor))` (module docstring)."""
    return max(1, min(available, int(step_flops // FLOPS_PER_THREAD)))


class _GlobalTotalOnly:
    """Stands in for :class:`FlopCounterMode`'s module tracker: every count goes to the global
    total only (``parents``), and nothing hooks the modules."""

    parents = ("Global",)

    def __enter__(self) -> _GlobalTotalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def flop_counter() -> FlopCounterMode:
    """A :class:`FlopCounterMode` that counts the global total only.

    Its per-module breakdown hooks each module's inputs for the backward pass, and torch 2.13
    refuses those hooks when a step differentiates with respect to a module's leaf input
    (``torch.autograd.grad``: WGAN-GP's penalty at interpolated points raised "A leaf node was
    passed to _will_engine_execute_node"); the total is all the rule needs.
    """
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalTotalOnly()  # type: ignore[assignment]
    return counter


def step_flops(model: GenerativeModel, data: Dataset, config: TrainConfig, seed: int = 0) -> float:
    """Floating-point operations of one training step of ``model`` on a batch of ``data``.

    Runs the step on a deep copy (its own optimizers, a throwaway generator, torch's global
    generator restored after), so ``model`` and every random stream of the run are untouched.
    """
    trial = copy.deepcopy(model).train()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    x = data.x_train[: config.batch_size].to(model.device)
    if dequantizes(model, data):
        x = dequantize(x, data.info, generator)
    labels = data.y_train[: config.batch_size] if model.capabilities.context else None
    context = context_rows(None if labels is None else labels.to(model.device))
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        trial.prepare(x, **context)
        optimizers = Optimizers(trial.configure_optimizers(config), config.grad_clip)
        with flop_counter() as counter:
            trial.training_step(x, optimizers, generator, **context)
    return float(counter.get_total_flops())


def choose_threads(
    model: GenerativeModel,
    data: Dataset,
    config: TrainConfig,
    threads: int | None = None,
    *,
    seed: int = 0,
    recorded: int | None = None,
) -> ThreadChoice:
    """The thread count for training ``model``: ``threads`` if given, else ``OMP_NUM_THREADS``
    if set, else ``recorded`` (a resumed run's count), else the rule of the module docstring."""
    if threads is not None:
        return ThreadChoice(check_threads(threads), "argument")
    if os.environ.get("OMP_NUM_THREADS"):
        return ThreadChoice(torch.get_num_threads(), "OMP_NUM_THREADS")
    if recorded is not None:
        return ThreadChoice(check_threads(recorded), "run")
    if model.fit_method == "closed_form":
        return ThreadChoice(spare_cores(), "rule")
    flops = step_flops(model, data, config, seed)
    return ThreadChoice(threads_for_flops(flops, spare_cores()), "rule", flops)


@contextlib.contextmanager
def using_threads(count: int) -> Iterator[None]:
    """torch uses ``count`` threads inside the block, and the previous count after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


__all__ = [
    "FLOPS_PER_THREAD",
    "ThreadChoice",
    "check_threads",
    "choose_threads",
    "cores",
    "spare_cores",
    "step_flops",
    "threads_for_flops",
    "using_threads",
]
