"""Distances between two sets of samples by name: what ``genlab stats distance`` computes.

Rows are samples; ``(N, ...)`` arrays are flattened to ``(N, D)``.

==============  ==========================================================================
metric          value
==============  ==========================================================================
``tv``          total variation between the empirical histograms
                (:mod:`genlab.stats.histogram`: exact pmfs over distinct rows for
                integer-valued data, else ``bins`` equal-width bins per axis, <= 3-D)
``kl``          :math:`\\mathrm{KL}(A\\|B)` between the same histograms, with ``pseudocount``
                (default 0.5) added to every cell of both so it stays finite
``js``          Jensen-Shannon divergence (nats) between the same histograms
``wasserstein`` exact :math:`W_1` (1-D formula, else exact OT with Euclidean cost)
``ot``          exact (or Sinkhorn) OT cost with ground cost :math:`\\|x-y\\|^p`
                (``p=2``: :math:`W_2^2`)
``mmd``         unbiased :math:`\\mathrm{MMD}^2` (RBF, median heuristic; or polynomial)
``energy``      energy distance
``frechet``     Frechet distance between Gaussian fits of the rows (FID's formula)
``kid``         KID: polynomial-kernel :math:`\\mathrm{MMD}^2_u` over subsets (+ ``std``)
``knn-kl``      k-NN estimate of :math:`\\mathrm{KL}(A\\|B)` for continuous data
==============  ==========================================================================

``ci_low``/``ci_high``: a 95% *basic* bootstrap interval (:mod:`genlab.stats.bootstrap`;
it corrects the upward bias of plug-in distances, clipped at 0 since every population value
here is non-negative) with ``bootstrap_bias`` (mean resampled value minus the estimate), for
every metric but ``knn-kl`` (resampling creates duplicates, which k-NN statistics cannot take)
and ``kid`` (which reports the spread over its subsets as ``std``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.config import check
from genlab.data.files import read_npy
from genlab.errors import ConfigError, DataError
from genlab.metrics.frechet import frechet_feature_distance, kernel_inception_distance
from genlab.stats.bootstrap import bootstrap_ci
from genlab.stats.histogram import empirical_histograms, histogram_divergence
from genlab.stats.kernels import KERNELS
from genlab.stats.knn import knn_kl_divergence
from genlab.stats.mmd import energy_distance, mmd2_unbiased
from genlab.stats.transport import optimal_transport_cost, wasserstein_distance
from genlab.stats.validation import as_sample_pair, as_samples

DistanceMetric = Literal[
    "tv", "kl", "js", "wasserstein", "ot", "mmd", "energy", "frechet", "kid", "knn-kl"
]
DISTANCE_METRICS: tuple[str, ...] = get_args(DistanceMetric)
NO_BOOTSTRAP = ("knn-kl", "kid")
KL_PSEUDOCOUNT = 0.5


def read_samples(path: str | Path) -> Tensor:
    """A ``.npy`` file of samples (rows) as a float64 ``(N, D)`` tensor, checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix != ".npy":
        raise DataError(f"{path}: expected a .npy array of samples (rows are samples)")
    array = read_npy(path)
    if array.ndim == 0:
        raise DataError(f"{path}: holds a scalar, expected rows of samples")
    return as_samples(array, str(path))


def sample_distance(
    a: Tensor | np.ndarray,
    b: Tensor | np.ndarray,
    metric: DistanceMetric,
    *,
    n_bootstrap: int = 100,
    seed: int = 0,
    bins: int = 20,
    pseudocount: float | None = None,
    k: int = 5,
    kernel: str = "rbf",
    ot_method: str = "exact",
    p: float = 2.0,
    reg: float = 0.05,
) -> dict[str, Any]:
    """``{"metric", "value", ["ci_low", "ci_high", "n_bootstrap"], ...}`` (module docstring).

    Arguments:
        a, b: ``(N, D)`` and ``(M, D)`` samples.
        metric: one of :data:`DISTANCE_METRICS`.
        n_bootstrap: resamples for the confidence interval (0: none).
        seed: seeds the bootstrap and KID's subsets.
        bins: histogram bins per axis (tv, kl, js on continuous data).
        pseudocount: added to every histogram cell (default 0.5 for kl, else 0).
        k: neighbour order (knn-kl).
        kernel: ``"rbf"`` or ``"polynomial"`` (mmd).
        ot_method, p, reg: OT solver, cost exponent and Sinkhorn regularisation (ot).
    """
    if metric not in DISTANCE_METRICS:
        raise ConfigError(
            f"unknown metric {metric!r}; choose one of {', '.join(DISTANCE_METRICS)}"
        )
    if kernel not in KERNELS:
        raise ConfigError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    check(n_bootstrap >= 0, f"n_bootstrap must be >= 0, got {n_bootstrap}")
    x, y = as_sample_pair(a, b, ("A", "B"), min_rows=2)
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {"metric": metric}
    if metric == "kid":
        result = kernel_inception_distance(x, y, generator=generator)
        out.update(
            value=result.mean,
            std=result.std,
            n_subsets=result.n_subsets,
            subset_size=result.subset_size,
        )
        return out
    statistic = _statistic(metric, bins, pseudocount, k, kernel, ot_method, p, reg)
    if metric in ("tv", "kl", "js"):
        out["histogram"] = empirical_histograms(x, y, bins=bins)[2]
    if metric == "knn-kl" or n_bootstrap == 0:
        out["value"] = statistic(x, y)
        return out
    ci = bootstrap_ci(
        statistic,
        x,
        y,
        n_bootstrap=n_bootstrap,
        method="basic",
        lower_bound=0.0,
        generator=generator,
    )
    out.update(
        value=ci.value,
        ci_low=ci.low,
        ci_high=ci.high,
        bootstrap_bias=ci.bias,
        n_bootstrap=n_bootstrap,
    )
    return out


def _statistic(
    metric: str,
    bins: int,
    pseudocount: float | None,
    k: int,
    kernel: str,
    ot_method: str,
    p: float,
    reg: float,
) -> Callable[[Tensor, Tensor], float]:
    if metric in ("tv", "kl", "js"):
        default = KL_PSEUDOCOUNT if metric == "kl" else 0.0
        return functools.partial(
            histogram_divergence,
            divergence=metric,
            bins=bins,
            pseudocount=default if pseudocount is None else pseudocount,
        )
    statistics: dict[str, Callable[[Tensor, Tensor], float]] = {
        "wasserstein": wasserstein_distance,
        "ot": functools.partial(optimal_transport_cost, p=p, method=ot_method, reg=reg),
        "mmd": functools.partial(mmd2_unbiased, kernel=KERNELS[kernel]()),
        "energy": energy_distance,
        "frechet": frechet_feature_distance,
        "knn-kl": functools.partial(knn_kl_divergence, k=k),
    }
    return statistics[metric]
