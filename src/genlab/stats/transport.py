r"""Wasserstein distances between empirical distributions: exact in 1-D, POT for point clouds.

For empirical measures :math:`\hat P = \frac1n\sum_i\delta_{x_i}`,
:math:`\hat Q = \frac1m\sum_j\delta_{y_j}` and ground cost :math:`c(x,y) = \|x-y\|^p`,

.. math::
    W_p^p(\hat P, \hat Q) = \min_{\pi \in \Pi(\hat P,\hat Q)} \sum_{ij} \pi_{ij}\|x_i-y_j\|^p,

a linear program over couplings with marginals :math:`1/n` and :math:`1/m`, solved exactly by
POT's network simplex (``ot.emd2``). The entropic version adds :math:`\varepsilon\sum\pi\log\pi`
and is solved by Sinkhorn's iterations (Cuturi 2013); its plan's transport cost converges to
:math:`W_p^p` as :math:`\varepsilon\to 0`. On the line and :math:`p = 1`,
:math:`W_1 = \int |F_P(t) - F_Q(t)|\,dt`, computed exactly from the sorted samples.

References:
    Villani, "Optimal Transport: Old and New", 2009.
    Cuturi, "Sinkhorn distances", NeurIPS 2013, arXiv:1306.0895.
    Flamary et al., "POT: Python Optimal Transport", JMLR 2021.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.errors import ConfigError, DataError
from genlab.stats.validation import ArrayLike, as_sample_pair

OTMethod = Literal["exact", "sinkhorn"]
OT_METHODS: tuple[str, ...] = get_args(OTMethod)
MAX_SIMPLEX_ITERATIONS = 10_000_000
SINKHORN_ITERATIONS = 10_000


def wasserstein_1d(u: ArrayLike, v: ArrayLike) -> float:
    r"""Exact :math:`W_1 = \int_{\mathbb R}|F_u(t) - F_v(t)|\,dt` between two 1-D samples.

    Arguments:
        u, v: ``(n,)`` and ``(m,)`` samples (or ``(n, 1)``); sizes may differ.

    Returns:
        the distance, equal to ``scipy.stats.wasserstein_distance(u, v)``.

    Example:
        >>> wasserstein_1d([0.0, 1.0], [2.0, 3.0])
        2.0
    """
    a, b = as_sample_pair(_as_tensor(u), _as_tensor(v), ("u", "v"))
    if a.shape[1] != 1:
        raise DataError(f"wasserstein_1d needs 1-D samples, got {a.shape[1]} coordinates")
    a, b = a[:, 0].sort().values, b[:, 0].sort().values
    points = torch.cat([a, b]).sort().values
    widths = points.diff()
    cdf_a = torch.searchsorted(a, points[:-1], right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, points[:-1], right=True).double() / len(b)
    return float(((cdf_a - cdf_b).abs() * widths).sum())


def optimal_transport_cost(
    x: ArrayLike,
    y: ArrayLike,
    *,
    p: float = 2.0,
    method: OTMethod = "exact",
    reg: float = 0.05,
) -> float:
    r"""Transport cost :math:`\sum_{ij}\pi_{ij}\|x_i - y_j\|^p` of the optimal (or entropic) plan.

    Arguments:
        x, y: ``(n, d)`` and ``(m, d)`` point clouds with uniform weights.
        p: exponent of the Euclidean ground cost; ``"exact"`` gives :math:`W_p^p`.
        method: ``"exact"`` (``ot.emd2``) or ``"sinkhorn"`` (``ot.sinkhorn2``).
        reg: Sinkhorn's :math:`\varepsilon` relative to the mean ground cost
            (:math:`\varepsilon = \text{reg}\cdot\overline{C}`, so it does not depend on units).

    Returns:
        the cost (float64).
    """
    import ot

    if method not in OT_METHODS:
        raise ConfigError(f"unknown OT method {method!r}; choose one of {', '.join(OT_METHODS)}")
    if p <= 0:
        raise ConfigError(f"p must be positive, got {p}")
    a, b = as_sample_pair(_as_tensor(x), _as_tensor(y))
    xs, ys = a.cpu().numpy(), b.cpu().numpy()
    cost = ot.dist(xs, ys, metric="euclidean") ** p
    wa = np.full(len(xs), 1.0 / len(xs))
    wb = np.full(len(ys), 1.0 / len(ys))
    if method == "exact":
        return float(ot.emd2(wa, wb, cost, numItermax=MAX_SIMPLEX_ITERATIONS))
    if reg <= 0:
        raise ConfigError(f"Sinkhorn needs reg > 0, got {reg}")
    scale = float(cost.mean()) or 1.0
    plan = ot.sinkhorn(
        wa,
        wb,
        cost / scale,
        reg,
        method="sinkhorn_stabilized",
        numItermax=SINKHORN_ITERATIONS,
        stopThr=1e-9,
        warn=False,
    )
    violation = max(np.abs(plan.sum(1) - wa).sum(), np.abs(plan.sum(0) - wb).sum())
    if not np.isfinite(plan).all() or violation > 1e-4:
        raise ConfigError(
            f"Sinkhorn did not converge in {SINKHORN_ITERATIONS} iterations with reg={reg} "
            f"(marginal error {violation:.1e}); use a larger reg or method='exact'"
        )
    return float((plan * cost).sum())


def wasserstein_distance(x: ArrayLike, y: ArrayLike, *, p: float = 1.0) -> float:
    r"""Exact :math:`W_p` between two empirical distributions (Euclidean ground distance).

    Uses the 1-D formula of :func:`wasserstein_1d` for 1-D data and :math:`p = 1`, else
    :math:`(\text{exact OT cost})^{1/p}`.
    """
    a, b = as_sample_pair(_as_tensor(x), _as_tensor(y))
    if a.shape[1] == 1 and p == 1:
        return wasserstein_1d(a, b)
    return optimal_transport_cost(a, b, p=p, method="exact") ** (1.0 / p)


def _as_tensor(x: ArrayLike) -> Tensor | np.ndarray:
    return x if isinstance(x, Tensor | np.ndarray) else np.asarray(x, dtype=np.float64)
