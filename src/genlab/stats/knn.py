r"""Nearest-neighbour distances in chunks, and the k-NN estimator of KL divergence.

For :math:`x_{1..n}\sim P`, :math:`y_{1..m}\sim Q` in :math:`\mathbb R^d`, let
:math:`\rho_k(i)` be the distance from :math:`x_i` to its k-th nearest neighbour among the
other :math:`x_j` and :math:`\nu_k(i)` the distance to its k-th nearest neighbour among the
:math:`y_j`. Then

.. math::
    \widehat{\mathrm{KL}}(P\|Q) = \frac dn\sum_{i=1}^n\log\frac{\nu_k(i)}{\rho_k(i)}
        + \log\frac{m}{n-1}

is asymptotically unbiased and consistent for densities (Wang, Kulkarni & Verdu 2009).

References:
    Wang, Kulkarni & Verdu, "Divergence estimation for multidimensional densities via
    k-nearest-neighbor distances", IEEE Trans. IT, 2009.
    Perez-Cruz, "Kullback-Leibler divergence estimation of continuous distributions", ISIT 2008.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError
from genlab.stats import kernels
from genlab.stats.validation import ArrayLike, as_sample_pair

#: Most query rows per block; fewer when ``len(reference)`` is large (see ``block_rows``).
CHUNK = 1024


def knn_distances(
    query: Tensor, reference: Tensor, k: int, *, skip_self: bool = False, squared: bool = False
) -> Tensor:
    r"""Distance from each query row to its ``k``-th nearest reference row, ``(n_query,)``.

    Arguments:
        query: ``(n, d)``.
        reference: ``(m, d)``.
        k: which neighbour (1 = nearest).
        skip_self: ``query`` is ``reference``; row ``i`` does not count itself.
        squared: return squared distances.

    Memory stays at one block of at most :data:`genlab.stats.kernels.BLOCK_ELEMENTS`
    distances (at most :data:`CHUNK` query rows) whatever :math:`n` and :math:`m`.
    """
    available = len(reference) - (1 if skip_self else 0)
    if not 1 <= k <= available:
        raise DataError(f"k={k} nearest neighbours need more than {available} reference points")
    out = []
    step = kernels.block_rows(len(reference), CHUNK)
    for start in range(0, len(query), step):
        block = kernels.squared_distances(query[start : start + step], reference)  # (c, m)
        if skip_self:
            rows = torch.arange(len(block), device=block.device)
            block[rows, rows + start] = math.inf
        out.append(block.topk(k, dim=1, largest=False).values[:, -1])
    distances = torch.cat(out)
    return distances if squared else distances.sqrt()


def knn_kl_divergence(x: ArrayLike, y: ArrayLike, *, k: int = 1) -> float:
    r"""k-NN estimate of :math:`\mathrm{KL}(P\|Q)` in nats (module docstring).

    Arguments:
        x: ``(n, d)`` samples of :math:`P`.
        y: ``(m, d)`` samples of :math:`Q`.
        k: neighbour order (larger k: lower variance, more bias).

    Raises:
        DataError: on duplicate points (a zero distance makes the logarithm infinite).
    """
    check(k >= 1, f"k must be a positive integer, got {k}")
    a, b = as_sample_pair(x, y, min_rows=2)
    rho = knn_distances(a, a, k, skip_self=True)
    nu = knn_distances(a, b, k)
    if bool((rho == 0).any()) or bool((nu == 0).any()):
        raise DataError(
            "k-NN KL: some points coincide (zero nearest-neighbour distance); the estimator "
            "needs continuous data: raise k, or add a little noise"
        )
    n, m, d = len(a), len(b), a.shape[1]
    return float(d * (nu.log() - rho.log()).mean() + math.log(m / (n - 1)))
