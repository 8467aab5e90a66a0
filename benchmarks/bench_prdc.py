"""Precision/recall/density/coverage on 5,000 x 64 features: genlab vs ``prdc.compute_prdc``.

Same float64 features, same k, same process. genlab:
:func:`genlab.metrics.prdc.precision_recall_density_coverage` (chunked, squared distances,
one pass over the real x generated block); peer: the reference package ``prdc`` (NAVER),
which builds three full distance matrices with scikit-learn.

Run: ``python benchmarks/bench_prdc.py [--n 5000] [--d 64] [--k 5] [--out result.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from typing import Any

import numpy as np
import torch
from prdc import compute_prdc

from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.report.table import format_table

KEYS = ("precision", "recall", "density", "coverage")


def _time(fn, repeats: int) -> tuple[float, dict[str, float]]:  # noqa: ANN001
    best, value = np.inf, {}
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        result = compute_prdc(real, fake, k)
    return {key: float(result[key]) for key in KEYS}


def run(n: int = 5000, d: int = 64, k: int = 5, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time genlab and prdc on the same features; return a JSON-ready dict."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d))
    fake = rng.standard_normal((n, d)) * 1.1 + 0.1
    ours_time, ours = _time(
        lambda: precision_recall_density_coverage(real, fake, k=k).to_json(), repeats
    )
    peer_time, peer = _time(lambda: reference(real, fake, k), repeats)
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
    return {
        "benchmark": "prdc",
        "n": n,
        "d": d,
        "k": k,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "max_abs_difference": difference,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    result = run(args.n, args.d, args.k, args.repeats)
    columns = [("implementation", "implementation"), ("seconds", "seconds")]
    columns += [(key, key) for key in KEYS] + [("speedup_of_genlab", "genlab speed-up")]
    print(f"PRDC, {args.n} x {args.d} features per set, k={args.k}")
    print(format_table(result["rows"], columns))
    print(f"max |genlab - prdc| over the four values: {result['max_abs_difference']:.1e}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
