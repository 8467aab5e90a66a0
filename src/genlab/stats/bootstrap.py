r"""Uncertainty: percentile-bootstrap confidence intervals, and mean +/- std over seeds.

The bootstrap resamples each sample with replacement :math:`B` times and recomputes the
statistic, :math:`\hat\theta^*_b`. With :math:`q_\beta` the :math:`\beta`-quantile of
:math:`\{\hat\theta^*_b\}` and :math:`1-\alpha` the ``confidence``:

- ``"percentile"`` (Efron 1979): :math:`[q_{\alpha/2},\ q_{1-\alpha/2}]`;
- ``"basic"`` (Davison & Hinkley 1997, eq. 5.6):
  :math:`[2\hat\theta - q_{1-\alpha/2},\ 2\hat\theta - q_{\alpha/2}]`, which also corrects the
  first-order bias :math:`\bar\theta^* - \hat\theta`. Plug-in distances (histogram TV/KL/JS,
  empirical Wasserstein, Frechet) are biased upward, and resampling adds that bias once more
  (duplicated rows), so their percentile interval can lie entirely above the estimate; the
  basic interval targets the population value instead and may exclude a strongly biased
  estimate. ``bias`` reports :math:`\bar\theta^* - \hat\theta` so that this is visible.

The bootstrap reflects sampling variability; to compare Frechet distances across sample sizes
use FID-infinity (:func:`genlab.metrics.frechet.fid_infinity`). It is not applied to k-NN
statistics, which resampling with replacement breaks (duplicates have zero distance).

References:
    Efron, "Bootstrap methods: another look at the jackknife", Annals of Statistics, 1979.
    Efron & Tibshirani, "An Introduction to the Bootstrap", 1993.
    Davison & Hinkley, "Bootstrap Methods and their Application", 1997.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.config import check

N_BOOTSTRAP = 200
BootstrapMethod = Literal["percentile", "basic"]
BOOTSTRAP_METHODS: tuple[str, ...] = get_args(BootstrapMethod)


@dataclass(frozen=True)
class ConfidenceInterval:
    """``value`` on the full samples, the interval ``[low, high]`` and the bootstrap ``bias``."""

    value: float
    low: float
    high: float
    bias: float
    confidence: float
    n_bootstrap: int
    method: str


def bootstrap_ci(
    statistic: Callable[..., float],
    *samples: Tensor,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = 0.95,
    method: BootstrapMethod = "percentile",
    lower_bound: float | None = None,
    generator: torch.Generator | None = None,
) -> ConfidenceInterval:
    """Bootstrap interval of ``statistic(*samples)``, resampling each sample's rows.

    Arguments:
        statistic: a function of one or more ``(n_i, d)`` samples returning a float.
        samples: the samples, each resampled independently with replacement.
        n_bootstrap: :math:`B` resamples.
        confidence: coverage of the interval.
        method: ``"percentile"`` or ``"basic"`` (module docstring).
        lower_bound: clip the interval below at this value (e.g. 0 for a distance).
        generator: randomness of the resampling.

    Example:
        >>> x = torch.randn(200, 1, generator=torch.Generator().manual_seed(0))
        >>> ci = bootstrap_ci(lambda s: float(s.mean()), x, n_bootstrap=100)
        >>> ci.low < ci.value < ci.high
        True
    """
    check(n_bootstrap >= 2, f"n_bootstrap must be at least 2, got {n_bootstrap}")
    check(0.0 < confidence < 1.0, f"confidence must be in (0, 1), got {confidence}")
    check(
        method in BOOTSTRAP_METHODS, f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}"
    )
    value = float(statistic(*samples))
    draws = []
    for _ in range(n_bootstrap):
        resampled = [
            s[torch.randint(0, len(s), (len(s),), generator=generator).to(s.device)]
            for s in samples
        ]
        draws.append(float(statistic(*resampled)))
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(np.asarray(draws), [tail, 1.0 - tail])
    if method == "basic":
        low, high = 2 * value - high, 2 * value - low
    if lower_bound is not None:
        low, high = max(low, lower_bound), max(high, lower_bound)
    bias = float(np.mean(draws)) - value
    return ConfidenceInterval(
        value, float(low), float(high), bias, confidence, n_bootstrap, method
    )


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of repeated runs."""
    check(len(values) >= 1, "mean_and_std needs at least one value")
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std if math.isfinite(std) else 0.0
