r"""Maximum mean discrepancy and energy distance from samples (chunked, bounded memory).

With a kernel :math:`k`, samples :math:`x_{1..n} \sim P`, :math:`y_{1..m} \sim Q`:

.. math::
    \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i\ne j}k(x_i,x_j)
        + \frac{1}{m(m-1)}\sum_{i\ne j}k(y_i,y_j) - \frac{2}{nm}\sum_{i,j}k(x_i,y_j),

the unbiased U-statistic (it can be negative), and :math:`\widehat{\mathrm{MMD}}^2_b`, the
biased V-statistic that keeps the diagonal terms and uses :math:`1/n^2`, :math:`1/m^2`
(Gretton et al. 2012, eqs. 3 and 5). The energy distance is

.. math::
    \mathcal E(P, Q) = \big(2\,\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|\big)^{1/2}

with plug-in (V-statistic) means, as ``scipy.stats.energy_distance`` computes in 1-D; its
square is the biased MMD² of the distance kernel :math:`-\|x - y\|` (Sejdinovic et al. 2013).

References:
    Gretton et al., "A kernel two-sample test", JMLR 2012.
    Szekely & Rizzo, "Energy statistics: a class of statistics based on distances", 2013.
    Sejdinovic et al., "Equivalence of distance-based and RKHS-based statistics in hypothesis
    testing", Annals of Statistics 2013, arXiv:1207.6076.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.stats.kernels import Kernel, RBFKernel
from genlab.stats.validation import ArrayLike, as_sample_pair

CHUNK = 2048


def block_sum(x: Tensor, y: Tensor, pairwise: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    r""":math:`\sum_{i,j}` ``pairwise(x, y)[i, j]`` computed in blocks of :data:`CHUNK` rows."""
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    for start in range(0, len(x), CHUNK):
        for other in range(0, len(y), CHUNK):
            total += pairwise(x[start : start + CHUNK], y[other : other + CHUNK]).sum()
    return total


def euclidean_distances(x: Tensor, y: Tensor) -> Tensor:
    """``(n, m)`` exact Euclidean distances (no :math:`\\|x\\|^2 - 2x^\\top y` cancellation)."""
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def _kernel_sums(x: Tensor, y: Tensor, kernel: Kernel) -> tuple[Tensor, ...]:
    kernel = kernel.fitted(torch.cat([x, y]))
    return (
        block_sum(x, x, kernel),
        block_sum(y, y, kernel),
        block_sum(x, y, kernel),
        kernel.diagonal(x).sum(),
        kernel.diagonal(y).sum(),
    )


def mmd2_unbiased(x: ArrayLike, y: ArrayLike, kernel: Kernel | None = None) -> float:
    r"""Unbiased :math:`\widehat{\mathrm{MMD}}^2_u` (module docstring); needs two samples each.

    Arguments:
        x, y: ``(n, d)`` and ``(m, d)`` samples.
        kernel: defaults to :class:`RBFKernel` with the median-heuristic bandwidth of the
            pooled sample.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
        >>> abs(mmd2_unbiased(x[:50], x[50:])) < 0.05
        True
    """
    a, b = as_sample_pair(x, y, min_rows=2)
    sxx, syy, sxy, dx, dy = _kernel_sums(a, b, kernel or RBFKernel())
    n, m = len(a), len(b)
    value = (sxx - dx) / (n * (n - 1)) + (syy - dy) / (m * (m - 1)) - 2 * sxy / (n * m)
    return float(value)


def mmd2_biased(x: ArrayLike, y: ArrayLike, kernel: Kernel | None = None) -> float:
    r"""Biased :math:`\widehat{\mathrm{MMD}}^2_b = \|\hat\mu_P - \hat\mu_Q\|^2_{\mathcal H} \ge 0`."""
    a, b = as_sample_pair(x, y)
    sxx, syy, sxy, _, _ = _kernel_sums(a, b, kernel or RBFKernel())
    n, m = len(a), len(b)
    return float(sxx / n**2 + syy / m**2 - 2 * sxy / (n * m))


def energy_distance(x: ArrayLike, y: ArrayLike) -> float:
    r"""Energy distance :math:`\mathcal E(P,Q)` with plug-in means (module docstring).

    Equals ``scipy.stats.energy_distance(u, v)`` for 1-D samples.
    """
    a, b = as_sample_pair(x, y)
    n, m = len(a), len(b)
    squared = (
        2 * block_sum(a, b, euclidean_distances) / (n * m)
        - block_sum(a, a, euclidean_distances) / n**2
        - block_sum(b, b, euclidean_distances) / m**2
    )
    return math.sqrt(max(float(squared), 0.0))
