"""Peak memory of every sample metric on large feature sets, each in a fresh process.

Issue 7 item 4: FID (streaming statistics), KID, precision/recall/density/coverage, nearest
neighbours, MMD and the birthday-paradox search on two sets of 100,000 x 64 random features
(float32, a real set and a shifted, scaled fake set) must keep peak memory under 2 GiB.

Each metric runs in its own ``python -m benchmarks.bench_memory METRIC N`` subprocess: it
imports everything and builds the features, reads the peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) as the baseline, runs the metric, and reports
the new peak. ``extra`` (the new peak minus the baseline) is what the metric itself needed;
``peak`` is the whole process (Python, torch and the features included). Both must be under
the limit. ``--quick`` uses 10,000 rows per set. ``ru_maxrss`` is a high-water mark: a metric
that needs less than what building the features needed shows an extra of 0.

Run: ``python -m benchmarks --only memory``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.report import ratio
from genlab.metrics.birthday import birthday_support, duplicate_threshold
from genlab.metrics.frechet import frechet_feature_distance, kernel_inception_distance
from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.stats.knn import knn_distances
from genlab.stats.mmd import mmd2_unbiased

NAME = "memory"
TITLE = "peak memory of each sample metric on two N x 64 feature sets, fresh process each"
LIMIT_BYTES = 2 * 2**30
D = 64


def features(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 64)`` float32 real and fake features (the fake set shifted and scaled)."""
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(n, D, generator=generator)
    fake = 1.1 * torch.randn(n, D, generator=generator) + 0.1
    return real, fake


def _birthday(real: torch.Tensor, fake: torch.Tensor) -> object:
    threshold = duplicate_threshold(real)
    return birthday_support(fake, threshold, generator=torch.Generator().manual_seed(0))


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "FID (streaming statistics)": frechet_feature_distance,
    "KID (100 subsets of 1,000)": lambda r, f: kernel_inception_distance(
        r, f, generator=torch.Generator().manual_seed(0)
    ),
    "precision/recall/density/coverage (k=5)": precision_recall_density_coverage,
    "nearest neighbours (5th, fake to real)": lambda r, f: knn_distances(f, r, 5),
    "MMD^2 unbiased (RBF, median heuristic)": mmd2_unbiased,
    "birthday search (threshold on real + 20 streams)": _birthday,
}


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def measure(metric: str, n: int) -> dict[str, Any]:
    """Run one metric in this process; its peak memory over the baseline and its time."""
    real, fake = features(n)
    baseline = _max_rss_bytes()
    started = time.perf_counter()
    METRICS[metric](real, fake)
    seconds = time.perf_counter() - started
    peak = _max_rss_bytes()
    return {
        "metric": metric,
        "n": n,
        "seconds": seconds,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "extra_bytes": peak - baseline,
    }


def measure_in_subprocess(metric: str, n: int) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (a clean ``ru_maxrss``)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", metric, str(n)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{metric} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    """Every metric of :data:`METRICS` in its own process on ``N`` x 64 features."""
    n = 10_000 if quick else 100_000
    rows = []
    for metric in METRICS:
        row = measure_in_subprocess(metric, n)
        row["peak_mib"] = row["peak_bytes"] / 2**20
        row["extra_mib"] = row["extra_bytes"] / 2**20
        row["under_limit"] = row["peak_bytes"] < LIMIT_BYTES and row["extra_bytes"] < LIMIT_BYTES
        rows.append(row)
    worst = max(rows, key=lambda r: r["peak_bytes"])
    return {
        "n": n,
        "d": D,
        "limit_bytes": LIMIT_BYTES,
        "threads": torch.get_num_threads(),
        "columns": [
            ["metric", "metric"],
            ["seconds", "seconds"],
            ["extra_mib", "extra MiB"],
            ["peak_mib", "process peak MiB"],
            ["under_limit", "< 2 GiB"],
        ],
        "rows": rows,
        "notes": [f"{n:,} x {D} float32 features per set; limit 2 GiB (2048 MiB)"],
        "ratios": [
            ratio(
                f"memory: largest process peak / 2 GiB ({worst['metric']})",
                worst["peak_bytes"] / LIMIT_BYTES,
                1.0,
                at_most=True,
            )
        ],
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
