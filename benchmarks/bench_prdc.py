"""Precision/recall/density/coverage on 5,000 x 64 features: genlab vs ``prdc.compute_prdc``.

Same float64 features, same k, same process. genlab:
:func:`genlab.metrics.prdc.precision_recall_density_coverage` (chunked, squared distances,
one pass over the real x generated block); peer: the reference package ``prdc`` (NAVER),
which builds three full distance matrices with scikit-learn.

Issue 5's target: at least 2x faster than prdc with equal values. ``--quick``: 2,000 x 64.

Run: ``python -m benchmarks --only prdc``.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from prdc import compute_prdc

from benchmarks.report import ratio
from benchmarks.timing import best_of
from genlab.metrics.prdc import precision_recall_density_coverage

NAME = "prdc"
TITLE = "precision/recall/density/coverage (k=5) on 64-d features vs prdc.compute_prdc"
KEYS = ("precision", "recall", "density", "coverage")


def reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        result = compute_prdc(real, fake, k)
    return {key: float(result[key]) for key in KEYS}


def run(quick: bool = False, seed: int = 0, k: int = 5) -> dict[str, Any]:
    """Time genlab and prdc on the same features; return a JSON-ready dict."""
    n, d, repeats = (2000, 64, 3) if quick else (5000, 64, 3)
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d))
    fake = rng.standard_normal((n, d)) * 1.1 + 0.1
    ours_time, ours = best_of(
        lambda: precision_recall_density_coverage(real, fake, k=k).to_json(), repeats
    )
    peer_time, peer = best_of(lambda: reference(real, fake, k), repeats)
    difference = max(abs(ours[key] - peer[key]) for key in KEYS)
    rows = [
        {"implementation": "genlab", "seconds": ours_time, **ours, "speedup_of_genlab": 1.0},
        {
            "implementation": "prdc.compute_prdc",
            "seconds": peer_time,
            **peer,
            "speedup_of_genlab": peer_time / ours_time,
        },
    ]
    columns = [["implementation", "implementation"], ["seconds", "seconds"]]
    columns += [[key, key] for key in KEYS] + [["speedup_of_genlab", "genlab speed-up"]]
    return {
        "n": n,
        "d": d,
        "k": k,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "max_abs_difference": difference,
        "columns": columns,
        "rows": rows,
        "notes": [f"{n} x {d} features per set, best of {repeats}"],
        "ratios": [
            ratio("PRDC speed-up vs prdc", peer_time / ours_time, 2),
            ratio("PRDC max |genlab - prdc| over the 4 values", difference, 1e-6, at_most=True),
        ],
    }
