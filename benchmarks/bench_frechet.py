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

Issue 5's targets: at least 5x faster than pytorch-fid's formula and 2x faster than torchmetrics,
agreeing to 1e-4 (relative). ``--quick``: 2,000 x 512.

Run: ``python -m benchmarks --only frechet``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch
from torchmetrics.image.fid import _compute_fid

from benchmarks.report import ratio
from benchmarks.timing import best_of
from genlab.metrics.frechet import frechet_feature_distance

NAME = "frechet"
TITLE = "Frechet distance of two feature sets, statistics included"


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


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Time genlab and both peers on the same features; return a JSON-ready dict."""
    n, d, repeats = (2000, 512, 2) if quick else (10_000, 2048, 2)
    real, fake = features(n, d, seed)
    implementations = {
        "genlab": genlab_fid,
        "pytorch-fid (scipy sqrtm)": pytorch_fid,
        "torchmetrics (_compute_fid)": torchmetrics_fid,
    }
    timings = {
        name: best_of(lambda f=f: f(real, fake), repeats) for name, f in implementations.items()
    }
    ours_time, ours_value = timings["genlab"]
    rows = [
        {
            "implementation": name,
            "seconds": seconds,
            "fid": value,
            "speedup_of_genlab": seconds / ours_time,
            "relative_difference": abs(ours_value - value) / abs(value),
        }
        for name, (seconds, value) in timings.items()
    ]
    return {
        "n": n,
        "d": d,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "columns": [
            ["implementation", "implementation"],
            ["seconds", "seconds"],
            ["fid", "FID"],
            ["speedup_of_genlab", "genlab speed-up"],
            ["relative_difference", "rel. diff. to genlab"],
        ],
        "rows": rows,
        "notes": [f"{n} x {d} features per set, best of {repeats}"],
        "ratios": [
            ratio(
                "Frechet speed-up vs pytorch-fid (scipy sqrtm)", rows[1]["speedup_of_genlab"], 5
            ),
            ratio("Frechet speed-up vs torchmetrics", rows[2]["speedup_of_genlab"], 2),
            ratio(
                "Frechet relative difference, worst peer",
                max(r["relative_difference"] for r in rows[1:]),
                1e-4,
                at_most=True,
            ),
        ],
    }
