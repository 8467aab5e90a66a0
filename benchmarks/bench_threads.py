"""The thread count genlab picks against the best one measured, in the same run.

README's plain commands set no thread count, so genlab picks one
(:mod:`genlab.train.threads`: one thread per ``FLOPS_PER_THREAD`` of a training step, at most
the cores not busy with other work). For each case, the same training (``genlab.fit``, no
validation split, same seed) runs with every thread count from 1 to the cores and with genlab's
own choice (``OMP_NUM_THREADS`` unset, so that the rule decides, busy cores included), best of
``repeats`` interleaved runs; the choice's time includes the FLOP count and the busy-core
measurement that make it (a one-time cost, also shown alone as "choosing s"). The ratio is the
choice's steps/s over the best count's.

Cases (the defaults of each family, as README's commands run them):

- ``flow`` on ``moons`` (RealNVP, 8 couplings of 64-64 MLPs, batch 256: the smallest step;
  1,000 steps, 3,000 at full size, as README's moons runs take);
- ``gan`` on ``ring`` (MLP generator and discriminator, batch 256);
- ``vae`` on ``digits`` (MLP 256-256, batch 128);
- ``gan`` on 28x28 images (its default for images: conv networks, batch 256); the images are
  scikit-learn's digits upsampled to 28x28 (``benchmarks.bench_vae.synthetic_mnist``), a fair
  stand-in for MNIST's shape; enough steps (60, 180 at full size) that choosing, once per
  run, weighs about as little as it does in a run of the budget's thousands.

Run: ``python -m benchmarks --only threads`` (the result does not depend on
``OMP_NUM_THREADS``: each run sets its count, and the choice runs with the variable unset).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import genlab
from benchmarks.bench_vae import genlab_dataset, synthetic_mnist
from benchmarks.report import ratio
from genlab.api import build_model
from genlab.data import Dataset
from genlab.settings import resolve_settings
from genlab.train.threads import (
    FLOPS_PER_THREAD,
    busy_cores,
    choose_threads,
    cores,
    forget_busy_cores,
)

NAME = "threads"
TITLE = "training steps/s: genlab's thread count against the best count, same run"


def cases(quick: bool) -> list[tuple[str, str, Dataset, int]]:
    """(label, family, data, steps) of each case."""
    n = 2000 if quick else 8000
    train, test = synthetic_mnist(n, 500)
    images = genlab_dataset(train, test)
    scale = 1 if quick else 3
    return [
        ("flow on moons", "flow", genlab.data.load("moons"), 1000 * scale),
        ("gan on ring", "gan", genlab.data.load("ring"), 200 * scale),
        ("vae on digits", "vae", genlab.data.load("digits"), 300 * scale),
        ("gan (conv) on 28x28", "gan", images, 60 * scale),
    ]


@contextmanager
def no_thread_variable() -> Iterator[None]:
    """``OMP_NUM_THREADS`` unset inside the block (as a user who sets nothing runs)."""
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved


def train_seconds(family: str, data: Dataset, steps: int, threads: int | None) -> float:
    """Wall seconds of ``genlab.fit`` for ``steps`` steps with ``threads`` (None: genlab's)."""
    settings: dict[str, Any] = {"steps": steps, "val_fraction": 0.0, "eval_every": steps}
    started = time.perf_counter()
    with no_thread_variable():
        genlab.fit(family, data, threads=threads, **settings)
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 5
    available = cores()
    counts = list(range(1, available + 1))
    rows, ratios = [], []
    for label, family, data, steps in cases(quick):
        resolved = resolve_settings(family, {"steps": steps}, None, data.info)
        model = build_model(family, resolved.model, data.info, 0)
        train_seconds(family, data, 2, 1)  # warm-up (first optimizer step imports)
        forget_busy_cores()  # a fresh busy-core measurement, as a new run makes
        started = time.perf_counter()
        with no_thread_variable():  # genlab's own choice, as its runs below make it
            choice = choose_threads(model, data, resolved.train)
        choice_seconds = time.perf_counter() - started  # what a run spends choosing, once
        flops, chosen = choice.step_flops or 0.0, choice.count
        best: dict[int | None, float] = {}
        for _ in range(repeats):
            for threads in [*counts, None]:
                seconds = train_seconds(family, data, steps, threads)
                best[threads] = min(best.get(threads, float("inf")), seconds)
        fastest = min(counts, key=lambda t: best[t])
        row: dict[str, Any] = {
            "case": label,
            "step_gflop": flops / 1e9,
            "chosen": chosen,
            "choice_seconds": choice_seconds,
            "fastest": fastest,
            "choice_vs_best": best[fastest] / best[None],
        }
        row.update({f"steps_per_s_{t}": steps / best[t] for t in counts})
        row["steps_per_s_choice"] = steps / best[None]
        rows.append(row)
        ratios.append(
            ratio(
                f"{label}: steps/s with genlab's count / the best count",
                best[fastest] / best[None],
                0.9,
            )
        )
    columns = [["case", "case"], ["step_gflop", "step GFLOP"], ["chosen", "genlab's count"],
               ["choice_seconds", "choosing s"]]  # fmt: skip
    columns += [[f"steps_per_s_{t}", f"steps/s, {t} thr."] for t in counts]
    columns += [["steps_per_s_choice", "steps/s, genlab's"], ["fastest", "fastest"],
                ["choice_vs_best", "genlab's / best"]]  # fmt: skip
    return {
        "threads": f"1-{available}",
        "cores": available,
        "repeats": repeats,
        "flops_per_thread": FLOPS_PER_THREAD,
        "columns": columns,
        "rows": rows,
        "notes": [
            f"best of {repeats} interleaved runs per count; genlab's count: one thread per "
            f"{FLOPS_PER_THREAD / 1e9:g} GFLOP of a step, at most the spare cores (cores less "
            f"those busy with other work; {available} cores here); its time "
            "includes the FLOP count that chooses it; cores busy with other work at the end "
            f"{busy_cores() or 0.0:.1f}, load average {os.getloadavg()[0]:.1f}"
        ],
        "ratios": ratios,
    }
