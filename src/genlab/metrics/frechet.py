r"""Frechet distance (FID-style), KID and FID-infinity on any feature space.

- Frechet distance: :math:`\|\hat\mu_r-\hat\mu_g\|^2 + \operatorname{tr}(\hat\Sigma_r +
  \hat\Sigma_g - 2(\hat\Sigma_r\hat\Sigma_g)^{1/2})`, the squared W2 between Gaussian fits of
  the two feature sets (:func:`genlab.stats.gaussian.frechet_distance`), from streaming
  statistics. On the Inception network this is FID (Heusel et al. 2017); on genlab's domain
  network it is "domain FID", **not comparable** to Inception-based numbers.
- KID: the unbiased :math:`\mathrm{MMD}^2_u` with the kernel :math:`(x^\top y/d + 1)^3`,
  averaged over random subsets (Binkowski et al. 2018); unbiased, so sizes compare.
- FID-infinity: the Frechet distance is biased upward by :math:`O(1/N)`. Computing it for
  generated subsets of sizes :math:`N_1 < \dots < N_k` and fitting
  :math:`\mathrm{FD}_N = \mathrm{FD}_\infty + b/N` by least squares, the intercept
  :math:`\mathrm{FD}_\infty` estimates the value at infinite sample size (Chong & Forsyth
  2020), so numbers from different :math:`N` can be compared.

References:
    Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash
    equilibrium", NeurIPS 2017, arXiv:1706.08500.
    Binkowski et al., "Demystifying MMD GANs", ICLR 2018, arXiv:1801.01401.
    Chong & Forsyth, "Effectively unbiased FID and Inception Score and where to find them",
    CVPR 2020, arXiv:1911.07023.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError
from genlab.metrics.features import (
    CHUNK,
    FeatureExtractor,
    GaussianStatistics,
    feature_statistics,
)
from genlab.stats.gaussian import frechet_distance
from genlab.stats.kernels import PolynomialKernel
from genlab.stats.mmd import mmd2_unbiased


def frechet_distance_from_statistics(real: GaussianStatistics, fake: GaussianStatistics) -> float:
    """Frechet distance between two feature sets' Gaussian statistics."""
    return frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)


def frechet_feature_distance(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    extractor: FeatureExtractor | None = None,
    *,
    chunk_size: int = CHUNK,
) -> float:
    """Frechet distance between the ``extractor`` features of two sets (module docstring).

    The two sets' statistics are accumulated concurrently, one thread each, with BLAS held to
    one thread for the duration of the call (the statistics and the eigenvalue step): two
    independent streams use two cores without oversubscription, and multi-threaded LAPACK
    slows down many times over when the cores are shared with other work.

    Arguments:
        real, fake: ``(N, ...)`` examples (or features, with ``extractor=None``).
        extractor: ``(batch, ...) -> (batch, d)``; ``None`` uses the flattened rows.
        chunk_size: rows per chunk; memory is :math:`O(\\text{chunk}\\cdot d + d^2)`.
    """
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(2) as pool:
        real_stats, fake_stats = pool.map(
            lambda x: feature_statistics(x, extractor, chunk_size), (real, fake)
        )
        return frechet_distance_from_statistics(real_stats, fake_stats)


@dataclass(frozen=True)
class KIDResult:
    """Mean and standard deviation of the subset KID estimates."""

    mean: float
    std: float
    n_subsets: int
    subset_size: int


def kernel_inception_distance(
    real_features: Tensor,
    fake_features: Tensor,
    *,
    n_subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> KIDResult:
    r"""KID: mean of :math:`\mathrm{MMD}^2_u` (cubic polynomial kernel) over random subsets.

    Arguments:
        real_features, fake_features: ``(N, d)`` features.
        n_subsets: number of subsets.
        subset_size: rows per subset, drawn without replacement from each set; when a set
            has fewer than ``2 * subset_size`` rows, half of the smaller set (so that subsets
            differ and ``std`` means something).
    """
    check(n_subsets >= 1, f"n_subsets must be positive, got {n_subsets}")
    smaller = min(len(real_features), len(fake_features))
    size = subset_size if smaller >= 2 * subset_size else smaller // 2
    if size < 2:
        raise DataError("KID needs at least 2 real and 2 generated feature rows")
    kernel = PolynomialKernel()
    values = []
    for _ in range(n_subsets):
        r = real_features[torch.randperm(len(real_features), generator=generator)[:size]]
        f = fake_features[torch.randperm(len(fake_features), generator=generator)[:size]]
        values.append(mmd2_unbiased(r, f, kernel))
    array = np.asarray(values)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return KIDResult(float(array.mean()), std, n_subsets, size)


@dataclass(frozen=True)
class FIDInfinityResult:
    """``fid_infinity``: the intercept; ``slope``: :math:`b`; ``sizes``/``values``: the fit."""

    fid_infinity: float
    slope: float
    sizes: tuple[int, ...]
    values: tuple[float, ...]


def fid_infinity(
    real_features: Tensor,
    fake_features: Tensor,
    *,
    sizes: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> FIDInfinityResult:
    r"""Extrapolate the Frechet distance to infinitely many generated samples.

    Arguments:
        real_features: ``(N_r, d)`` features of real data (all of them are used).
        fake_features: ``(N_g, d)`` features of generated samples.
        sizes: generated subset sizes; default 8 sizes evenly spaced from :math:`N_g/4` to
            :math:`N_g` (Chong & Forsyth use 5,000 to 50,000).
        generator: draws the subsets (without replacement).
    """
    n = len(fake_features)
    if sizes is None:
        sizes = np.unique(np.linspace(max(2, n // 4), n, 8).astype(int)).tolist()
    sizes = sorted(int(s) for s in sizes)
    if len(sizes) < 2 or sizes[0] < 2 or sizes[-1] > n:
        raise DataError(f"fid_infinity needs >= 2 sizes within [2, {n}], got {sizes}")
    real = feature_statistics(real_features)
    values = []
    for size in sizes:
        subset = fake_features[torch.randperm(n, generator=generator)[:size]]
        values.append(frechet_distance_from_statistics(real, feature_statistics(subset)))
    slope, intercept = np.polyfit(1.0 / np.asarray(sizes, dtype=np.float64), values, 1)
    return FIDInfinityResult(float(intercept), float(slope), tuple(sizes), tuple(values))
