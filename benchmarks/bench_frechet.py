"""Frechet distance of two 10,000 x 2,048 feature sets, statistics included: genlab vs peers.

Peers, run in the same process on the same features:

- ``pytorch-fid``: its formula restated (pytorch-fid itself cannot be installed here):
  ``np.mean``/``np.cov`` statistics and ``scipy.linalg.sqrtm(sigma1 @ sigma2)``, as in
  ``pytorch_fid.fid_score.calculate_frechet_distance``;
- ``torchmetrics``: the statistics ``FrechetInceptionDistance`` accumulates (float64 sums of
  features and of ``features.T @ features``) and its own function
  ``torchmetrics.image.fid._compute_fid`` (``eigvals(sigma1 @ sigma2)``).

genlab: :func:`genlab.metrics.frechet.frechet_feature_distance` (streaming float64 statistics
with BLAS syrk, Cholesky factor, symmetric eigenvalues).

Run: ``python benchmarks/bench_frechet.py [--n 10000] [--d 2048] [--out result.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torchmetrics.image.fid import _compute_fid

from genlab.metrics.frechet import frechet_feature_distance
from genlab.report.table import format_table


def pytorch_fid(act1: np.ndarray, act2: np.ndarray) -> float:
    """pytorch-fid's ``calculate_activation_statistics`` + ``calculate_frechet_distance``."""
    mu1, sigma1 = np.mean(act1, axis=0), np.cov(act1, rowvar=False)
    mu2, sigma2 = np.mean(act2, axis=0), np.cov(act2, rowvar=False)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def torchmetrics_fid(act1: np.ndarray, act2: np.ndarray) -> float:
    """torchmetrics' accumulated statistics (``update``/``compute``) and ``_compute_fid``."""
    stats = []
    for act in (act1, act2):
        f = torch.from_numpy(act).double()
        n = f.shape[0]
        mean = (f.sum(dim=0) / n).unsqueeze(0)
        cov = (f.t().mm(f) - n * mean.t().mm(mean)) / (n - 1)
        stats.append((mean.squeeze(0), cov))
    return float(_compute_fid(stats[0][0], stats[0][1], stats[1][0], stats[1][1]))


def genlab_fid(act1: np.ndarray, act2: np.ndarray) -> float:
    return frechet_feature_distance(act1, act2)


def features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated, non-negative float32 feature sets (Inception-like, distinct laws)."""
    rng = np.random.default_rng(seed)
    rank = d // 4
    basis = rng.standard_normal((rank, d)).astype(np.float32) / np.sqrt(rank)
    real = np.abs(rng.standard_normal((n, rank), dtype=np.float32) @ basis)
    other = basis + 0.2 * rng.standard_normal((rank, d)).astype(np.float32) / np.sqrt(rank)
    fake = np.abs(rng.standard_normal((n, rank), dtype=np.float32) @ other) * 1.05
    real += 0.1 * rng.random((n, d), dtype=np.float32)
    fake += 0.1 * rng.random((n, d), dtype=np.float32)
    return real, fake


def _time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    best, value = np.inf, np.nan
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def run(n: int = 10_000, d: int = 2048, repeats: int = 1, seed: int = 0) -> dict[str, Any]:
    """Time genlab and both peers on the same features; return a JSON-ready dict."""
    real, fake = features(n, d, seed)
    implementations = {
        "genlab": genlab_fid,
        "pytorch-fid (scipy sqrtm)": pytorch_fid,
        "torchmetrics (_compute_fid)": torchmetrics_fid,
    }
    timings = {
        name: _time(lambda f=f: f(real, fake), repeats) for name, f in implementations.items()
    }
    ours_time, ours_value = timings["genlab"]
    rows = []
    for name, (seconds, value) in timings.items():
        rows.append(
            {
                "implementation": name,
                "seconds": seconds,
                "fid": value,
                "speedup_of_genlab": seconds / ours_time,
                "relative_difference": abs(ours_value - value) / abs(value),
            }
        )
    return {
        "benchmark": "frechet",
        "n": n,
        "d": d,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    result = run(args.n, args.d, args.repeats)
    columns = [
        ("implementation", "implementation"),
        ("seconds", "seconds"),
        ("fid", "FID"),
        ("speedup_of_genlab", "genlab speed-up"),
        ("relative_difference", "rel. diff. to genlab"),
    ]
    print(f"Frechet distance, {args.n} x {args.d} features per set, statistics included")
    print(format_table(result["rows"], columns))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
