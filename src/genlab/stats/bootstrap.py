r"""Uncertainty: percentile-bootstrap confidence intervals, and mean +/- std over seeds.

The percentile bootstrap (Efron 1979) resamples each sample with replacement :math:`B` times,
recomputes the statistic :math:`\hat\theta^*_b`, and reports the :math:`\alpha/2` and
:math:`1-\alpha/2` quantiles of :math:`\{\hat\theta^*_b\}` with :math:`1-\alpha` the
``confidence``. It reflects sampling variability, not an estimator's bias: for a biased
statistic such as the Frechet distance, compare sample sizes with FID-infinity instead
(:func:`genlab.metrics.frechet.fid_infinity`). It is not applied to k-NN based statistics,
which resampling with replacement breaks (duplicates have zero distance).

References:
    Efron, "Bootstrap methods: another look at the jackknife", Annals of Statistics, 1979.
    Efron & Tibshirani, "An Introduction to the Bootstrap", 1993.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genlab.config import check

N_BOOTSTRAP = 200


@dataclass(frozen=True)
class ConfidenceInterval:
    """``value`` on the full samples and the bootstrap interval ``[low, high]``."""

    value: float
    low: float
    high: float
    confidence: float
    n_bootstrap: int


def bootstrap_ci(
    statistic: Callable[..., float],
    *samples: Tensor,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``statistic(*samples)``, resampling each sample's rows.

    Arguments:
        statistic: a function of one or more ``(n_i, d)`` samples returning a float.
        samples: the samples, each resampled independently with replacement.
        n_bootstrap: :math:`B` resamples.
        confidence: coverage of the interval.
        generator: randomness of the resampling.

    Example:
        >>> x = torch.randn(200, 1, generator=torch.Generator().manual_seed(0))
        >>> ci = bootstrap_ci(lambda s: float(s.mean()), x, n_bootstrap=100)
        >>> ci.low < ci.value < ci.high
        True
    """
    check(n_bootstrap >= 2, f"n_bootstrap must be at least 2, got {n_bootstrap}")
    check(0.0 < confidence < 1.0, f"confidence must be in (0, 1), got {confidence}")
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
    return ConfidenceInterval(value, float(low), float(high), confidence, n_bootstrap)


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of repeated runs."""
    check(len(values) >= 1, "mean_and_std needs at least one value")
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std if math.isfinite(std) else 0.0
