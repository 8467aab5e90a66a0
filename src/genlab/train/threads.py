r"""How many CPU threads a training run uses, and why.

torch's default is one thread per core. On a core that other work keeps busy, that is slower
than one thread: the thread that waits for the busy core spins (with another job on a 2-core
machine, a two-thread run of the GAN on ``ring`` took four times as long as a one-thread run; at
load 9.5 even the conv GAN's 28x28 step ran 1.5 times faster on one thread than on two). On idle
cores a second thread paid for every family measured, from a 55-MFLOP step (the flow on moons,
1.02-1.11 times the steps/s of one thread) to the PixelCNN (1.6 times). So unless the user sets the
count (``--threads N`` / ``threads=N``, or the ``OMP_NUM_THREADS`` environment variable, in
that order), genlab takes the idle cores, one per :math:`F_1` of a step:

.. math::
    n = \min\left(\text{spare},\ \max\left(1,\ \left\lfloor F / F_1 \right\rfloor\right)
    \right), \qquad \text{spare} = \max(1,\ \text{cores} - \mathrm{round}(b)),

where :math:`F` is the number of floating-point operations of one training step (counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on a throwaway copy of the model and one
batch: matrix products and convolutions, forward and backward), :math:`F_1`
(:data:`FLOPS_PER_THREAD`) the step size from which a second thread paid for itself in
``benchmarks/bench_threads.py``, and :math:`b` the cores busy with other processes' work,
measured over a tenth of a second (:func:`busy_cores`; the one-minute load average where
``/proc/stat`` is missing, which also counts this process's own recent work), divided among the
``torchrun`` workers of the machine (:func:`local_workers`).
Closed-form fits (one large decomposition) use the spare cores.
The choice and its reason are recorded in the run's ``config.json`` (``threads``), and a resumed
run uses the recorded count, so that it computes the same numbers.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.config import check
from genlab.data.dataset import Dataset, dequantize
from genlab.models.base import GenerativeModel
from genlab.train.config import TrainConfig
from genlab.train.loop import context_rows, dequantizes
from genlab.train.optim import Optimizers

# A step of 25 MFLOP per thread: from a 55-MFLOP step (the flow on moons) up, a second thread
# paid on an idle core (1.02-1.6 times the steps/s of one; benchmarks/bench_threads.py)
FLOPS_PER_THREAD = 2.5e7
BUSY_WINDOW_S = 0.1  # busy_cores' sampling window: 10 clock ticks of each CPU
BUSY_REUSE_S = 30.0  # spare_cores measures again after this long
_busy_measured: tuple[float, float] | None = None  # (time.monotonic(), busy cores)
MAX_THREADS = 1024
ThreadSource = Literal["argument", "OMP_NUM_THREADS", "rule", "run"]


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count of a run, where it came from and, for the rule, the step's FLOPs."""

    count: int
    source: ThreadSource
    step_flops: float | None = None
    available: int | None = None  # the rule's bound: spare cores for this process (not saved)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "source": self.source, "step_flops": self.step_flops}

    @property
    def reason(self) -> str:
        """One line for the log: how many threads, and why."""
        if self.source == "rule" and self.step_flops is not None:
            return (
                f"{self.count} thread(s): a training step of {self.step_flops / 1e9:.3g} GFLOP "
                f"(one thread per {FLOPS_PER_THREAD / 1e9:.3g} GFLOP, at most the "
                f"{self.available} spare cores)"
            )
        if self.source == "rule":
            return f"{self.count} thread(s): a closed-form fit uses the spare cores"
        return f"{self.count} thread(s), set by {self.source}"


def cores() -> int:
    """The CPU cores this process may run on."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def _cpu_ticks(cpus: set[int]) -> tuple[int, int] | None:
    """``(busy, total)`` clock ticks of ``cpus`` since boot (``/proc/stat``), None without it."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name[:3] != "cpu" or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
        total += user + nice + system + idle + iowait + irq + softirq + steal
        busy += user + nice + system + irq + softirq + steal
    return (busy, total) if total else None


def busy_cores(window: float = BUSY_WINDOW_S) -> float | None:
    r"""Cores busy with other processes' work now, or None where ``/proc/stat`` is missing.

    Over ``window`` seconds: :math:`b = s \cdot n - c`, where :math:`s` is the busy share of the
    clock ticks of the :math:`n` CPUs this process may run on and :math:`c` the CPU seconds this
    process used per second of the window (its own threads are not other work). Unlike the load
    average, it leaves out this process's own past work (a benchmark's or a script's earlier
    trainings kept the one-minute load near 1 on an idle 2-core machine, and the rule chose one
    thread where two ran 1.1-1.6 times faster).
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    before = _cpu_ticks(cpus)
    if before is None:
        return None
    own_before, started = sum(os.times()[:2]), time.monotonic()
    time.sleep(window)
    after = _cpu_ticks(cpus)
    own = (sum(os.times()[:2]) - own_before) / (time.monotonic() - started)
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, share * len(cpus) - own)


def forget_busy_cores() -> None:
    """Make the next :func:`spare_cores` measure the busy cores again, as a new process would
    (a benchmark that times the choice a run makes)."""
    global _busy_measured
    _busy_measured = None


def spare_cores() -> int:
    """:func:`cores` less those busy with other work (rounded), at least 1: measured by
    :func:`busy_cores` (at most once every ``BUSY_REUSE_S`` seconds in a process), or the
    one-minute load average where that cannot be measured."""
    global _busy_measured
    now = time.monotonic()
    if _busy_measured is None or now - _busy_measured[0] > BUSY_REUSE_S:
        busy = busy_cores()
        if busy is None:
            busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        _busy_measured = (now, busy)
    return max(1, cores() - round(_busy_measured[1]))


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


@contextlib.contextmanager
def trial_step(
    model: GenerativeModel, data: Dataset, config: TrainConfig, seed: int = 0
) -> Iterator[Callable[[], object]]:
    """A function that runs one training step of a deep copy of ``model`` on the first batch
    of ``data`` (its own optimizers, a throwaway generator), for measuring a step: ``model``
    and every random stream of the run are untouched (torch's global generator is restored
    when the block ends)."""
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
        yield lambda: trial.training_step(x, optimizers, generator, **context)


def step_flops(model: GenerativeModel, data: Dataset, config: TrainConfig, seed: int = 0) -> float:
    """Floating-point operations of one training step of ``model`` on a batch of ``data``
    (on a copy: :func:`trial_step`)."""
    with trial_step(model, data, config, seed) as run_step, flop_counter() as counter:
        run_step()
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
    available = max(1, spare_cores() // local_workers())
    if model.fit_method == "closed_form":
        return ThreadChoice(available, "rule", available=available)
    flops = step_flops(model, data, config, seed)
    return ThreadChoice(threads_for_flops(flops, available), "rule", flops, available)


def local_workers() -> int:
    """The training processes ``torchrun`` started on this machine (``LOCAL_WORLD_SIZE``, 1
    without it): they share its spare cores, each measuring them before the others compute.
    (``torchrun`` itself sets ``OMP_NUM_THREADS=1`` for several workers unless the user set it.)"""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


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
    "busy_cores",
    "check_threads",
    "choose_threads",
    "cores",
    "forget_busy_cores",
    "local_workers",
    "spare_cores",
    "step_flops",
    "threads_for_flops",
    "using_threads",
]
