"""``genlab compare`` on 10,000 28x28 images: where the time goes, stage by stage.

Issue 18's targets, on this 2-core CPU with one thread: ``--budget smoke`` under 2 minutes and
``--budget fast`` under 20 minutes, for 10,000 images of MNIST's shape. genlab downloads no
data, so the images are the stand-in of ``benchmarks.bench_score`` (scikit-learn's digits
enlarged to 24x24 at random offsets in a 28x28 frame, with noise, 8-bit, labelled), saved as
``x``/``y`` in an ``.npz`` that genlab splits 80/20 (8,000 training, 2,000 test images).

Each budget is one ``genlab compare --data DATA.npz --budget B`` in a fresh process with
``OMP_NUM_THREADS=1``, every family of the data's kind; the table gives the wall seconds of the
whole command and, from ``scorecard.json``'s ``stage_seconds``, each family's seconds by stage
(training, likelihood, sample metrics, completions, class samples, posterior, pictures...) and
the stages the families share (the domain network, the baselines). ``--quick`` runs the
``smoke`` budget alone. At ``fast`` on these images each family's steps are fitted to
``compare``'s default share of training time (``genlab.compare.TRAIN_SECONDS``), and scoring
uses the budget's sizes for large images (``genlab.compare.sizes_key``).

Run: ``python -m benchmarks --only compare``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_score import digits_28
from benchmarks.report import ratio

NAME = "compare"
TITLE = "genlab compare on 10,000 28x28 images, one thread: seconds by stage"
N_IMAGES = 10_000
LIMITS = {"smoke": 120.0, "fast": 1200.0}


def run_compare(data: Path, out: Path, budget: str) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds of ``genlab compare`` in a fresh one-thread process, and its
    scorecard (CPU seconds: the steadier measure on a shared machine)."""
    command = [sys.executable, "-m", "genlab", "compare", "--data", str(data), "--budget",
               budget, "--out", str(out), "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu, json.loads((out / "scorecard.json").read_text())


def run(quick: bool = False) -> dict[str, Any]:
    budgets = ["smoke"] if quick else ["smoke", "fast"]
    rows, ratios, notes = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        x, y = digits_28(N_IMAGES, seed=1)
        data = Path(folder) / "digits28.npz"
        np.savez(data, x=x, y=y)
        for budget in budgets:
            seconds, cpu, card = run_compare(data, Path(folder) / budget, budget)
            shared = card["setup_seconds"]
            rows.append({"budget": budget, "part": "whole command", "seconds": seconds,
                         "stages": f"CPU {cpu:.1f} s"})  # fmt: skip
            rows += [
                {"budget": budget, "part": f"shared: {stage}", "seconds": value}
                for stage, value in shared.items()
            ]
            for family, row in card["families"].items():
                stages = ", ".join(f"{k} {v:.1f}" for k, v in row["stage_seconds"].items())
                rows.append(
                    {
                        "budget": budget,
                        "part": family,
                        "seconds": sum(row["stage_seconds"].values()),
                        "stages": stages,
                    }
                )
            share = card["train_seconds"]
            fitted = f"; each family's steps fitted to {share:g} s" if share else ""
            notes.append(
                f"{budget}: scored {card['n_test_scored']:,} of {card['n_test']:,} test "
                f"images{fitted}"
            )
            ratios.append(
                ratio(
                    f"compare --budget {budget}, 10,000 28x28, 1 thread (s)",
                    seconds,
                    LIMITS[budget],
                    at_most=True,
                )  # fmt: skip
            )
    return {
        "threads": 1,
        "n_images": N_IMAGES,
        "load_average": os.getloadavg()[0],
        "columns": [
            ["budget", "budget"],
            ["part", "part"],
            ["seconds", "seconds"],
            ["stages", "seconds by stage"],
        ],  # fmt: skip
        "rows": rows,
        "notes": [*notes, f"load average at the end {os.getloadavg()[0]:.1f}"],
        "ratios": ratios,
    }
