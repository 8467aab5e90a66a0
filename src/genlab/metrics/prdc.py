r"""Precision, recall, density and coverage of generated samples (k-NN manifolds).

With real features :math:`X_{1..N}`, generated :math:`Y_{1..M}`, :math:`r_k(X_i)` the
distance from :math:`X_i` to its k-th nearest real neighbour (and :math:`r_k(Y_j)` likewise
among the generated), and :math:`B(c, r)` the closed ball:

.. math::
    \text{precision} = \frac1M\sum_j 1\Big[Y_j \in \textstyle\bigcup_i B(X_i, r_k(X_i))\Big],
    \qquad
    \text{recall} = \frac1N\sum_i 1\Big[X_i \in \textstyle\bigcup_j B(Y_j, r_k(Y_j))\Big],

.. math::
    \text{density} = \frac{1}{kM}\sum_j\sum_i 1\big[Y_j \in B(X_i, r_k(X_i))\big],
    \qquad
    \text{coverage} = \frac1N\sum_i 1\Big[\exists j: Y_j \in B(X_i, r_k(X_i))\Big].

(Kynkaanniemi et al. 2019 for precision/recall; Naeem et al. 2020 for density/coverage.)
"Inside" is the strict ``distance < radius``, and :math:`r_k` is the (k+1)-th smallest
distance to the set *including the point itself*, exactly as the reference ``prdc`` package
computes them. Everything is float64 and chunked: a block of rows against one whole set at a
time, with at most :data:`genlab.stats.kernels.BLOCK_ELEMENTS` distances per block (fewer rows
for a larger set), so memory stays bounded instead of three full distance matrices. Squared distances come from one matrix product of augmented rows,
:math:`[-2x, 1, \|x\|^2]\cdot[y, \|y\|^2, 1]^\top = \|x-y\|^2`, and are compared with
squared radii (no square roots); the work runs in numpy on the CPU (whose elementwise
comparisons and counts are several times faster there than torch's), one block per thread of
a small pool with BLAS limited to one thread meanwhile, so the cores split the blocks instead
of fighting over them. Memory: at most ``workers`` blocks at a time.

References:
    Kynkaanniemi et al., "Improved precision and recall metric for assessing generative
    models", NeurIPS 2019, arXiv:1904.06991.
    Naeem et al., "Reliable fidelity and diversity metrics for generative models", ICML 2020,
    arXiv:2002.09797.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from genlab.config import check
from genlab.stats.kernels import block_rows
from genlab.stats.validation import ArrayLike, as_sample_pair

CHUNK = 1024
MAX_WORKERS = 4
T = TypeVar("T")


def _map_blocks(task: Callable[[int], T], n: int, chunk: int) -> list[T]:
    """``task(start)`` for every block start, on a thread pool (numpy releases the GIL)."""
    starts = range(0, n, chunk)
    workers = max(1, min(len(starts), os.cpu_count() or 1, MAX_WORKERS))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(task, starts))


def _augment(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Rows ``a``, ``b`` with :math:`a_i \cdot b_j = \|x_i - x_j\|^2` (module docstring)."""
    norms = np.einsum("ij,ij->i", x, x)[:, None]
    ones = np.ones_like(norms)
    return np.hstack([-2.0 * x, ones, norms]), np.hstack([x, norms, ones])


def _squared_distances(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Augmented rows ``(c, d + 2)`` and ``(m, d + 2)`` -> squared distances ``(c, m)``.

    Not clamped at 0: rounding can leave :math:`-10^{-15}` for coinciding points, which
    :func:`_kth_squared_radii` and the comparisons account for.
    """
    return left @ right.T


def _kth_squared_radii(left: np.ndarray, right: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """(k+1)-th smallest squared distance from each point to its own set (itself included).

    A radius of exactly 0 (k duplicates) becomes ``-inf``: prdc's strict ``distance < 0``
    never holds, and neither does ``d < -inf`` for our unclamped ``d``. Clamping commutes with
    taking the k-th smallest value, so positive radii equal prdc's clamped ones.
    """

    chunk = block_rows(len(right), chunk)

    def block_radii(start: int) -> np.ndarray:
        block = _squared_distances(left[start : start + chunk], right)
        block.partition(k, axis=1)  # in place: the block is ours
        return block[:, k].copy()

    radii = np.maximum(np.concatenate(_map_blocks(block_radii, len(left), chunk)), 0.0)
    radii[radii == 0.0] = -np.inf
    return radii


@dataclass(frozen=True)
class PRDCResult:
    precision: float
    recall: float
    density: float
    coverage: float

    def to_json(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "density": self.density,
            "coverage": self.coverage,
        }


def precision_recall_density_coverage(
    real: ArrayLike, fake: ArrayLike, *, k: int = 5, chunk_size: int = CHUNK
) -> PRDCResult:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (module docstring).

    Arguments:
        real: ``(N, d)`` real features (N > k).
        fake: ``(M, d)`` generated features (M > k).
        k: neighbourhood size (5 in Naeem et al.).
        chunk_size: most rows per block; fewer when a block of ``chunk_size`` x N distances
            would exceed :data:`genlab.stats.kernels.BLOCK_ELEMENTS` values.
    """
    check(k >= 1, f"k must be a positive integer, got {k}")
    check(chunk_size >= 1, f"chunk_size must be positive, got {chunk_size}")
    x, y = as_sample_pair(real, fake, ("real", "fake"), min_rows=k + 1)
    real_left, real_right = _augment(x.cpu().numpy())
    fake_left, fake_right = _augment(y.cpu().numpy())
    with threadpool_limits(1, user_api="blas"):  # the pool parallelises over blocks
        real_radii = _kth_squared_radii(real_left, real_right, k, chunk_size)  # (N,)
        fake_radii = _kth_squared_radii(fake_left, fake_right, k, chunk_size)  # (M,)

        cross_chunk = block_rows(len(real_right), chunk_size)

        def cross(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            distances = _squared_distances(fake_left[start : start + cross_chunk], real_right)
            inside = distances < real_radii[None, :]  # (chunk, N): fake j in ball of real i
            recalled = (distances < fake_radii[start : start + cross_chunk, None]).any(axis=0)
            return np.count_nonzero(inside, axis=1), inside.any(axis=0), recalled

        blocks = _map_blocks(cross, len(fake_left), cross_chunk)
    density_count = np.concatenate([b[0] for b in blocks])
    covered = np.logical_or.reduce([b[1] for b in blocks])
    recalled = np.logical_or.reduce([b[2] for b in blocks])
    return PRDCResult(
        precision=float(np.mean(density_count > 0)),
        recall=float(recalled.mean()),
        density=float(density_count.mean() / k),
        coverage=float(covered.mean()),
    )
