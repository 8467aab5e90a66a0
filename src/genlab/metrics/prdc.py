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
computes them. Everything is float64 and chunked: one block of ``chunk_size`` real rows
against all generated rows at a time, so memory is :math:`O(\text{chunk}\cdot M)` instead of
three full distance matrices.

References:
    Kynkaanniemi et al., "Improved precision and recall metric for assessing generative
    models", NeurIPS 2019, arXiv:1904.06991.
    Naeem et al., "Reliable fidelity and diversity metrics for generative models", ICML 2020,
    arXiv:2002.09797.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.config import check
from genlab.stats._validate import ArrayLike, as_sample_pair
from genlab.stats.kernels import squared_distances
from genlab.stats.knn import knn_distances

CHUNK = 1024


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


@torch.no_grad()
def precision_recall_density_coverage(
    real: ArrayLike, fake: ArrayLike, *, k: int = 5, chunk_size: int = CHUNK
) -> PRDCResult:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (module docstring).

    Arguments:
        real: ``(N, d)`` real features (N > k).
        fake: ``(M, d)`` generated features (M > k).
        k: neighbourhood size (5 in Naeem et al.).
        chunk_size: real rows per block.
    """
    check(k >= 1, f"k must be a positive integer, got {k}")
    x, y = as_sample_pair(real, fake, ("real", "fake"), min_rows=k + 1)
    # squared radii: compare squared distances with squared radii (monotone, no sqrt rounding)
    real_radii = knn_distances(x, x, k + 1, squared=True)
    fake_radii = knn_distances(y, y, k + 1, squared=True)
    density_count = torch.zeros(len(y), dtype=torch.float64, device=y.device)
    recalled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    covered = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for start in range(0, len(y), chunk_size):
        stop = start + chunk_size
        distances = squared_distances(y[start:stop], x)  # (chunk, N): fake rows, real columns
        inside = distances < real_radii[None, :]  # fake j inside the ball of real i
        density_count[start:stop] = inside.sum(1)
        covered |= inside.any(0)
        recalled |= (distances < fake_radii[start:stop, None]).any(0)
    return PRDCResult(
        precision=float((density_count > 0).double().mean()),
        recall=float(recalled.double().mean()),
        density=float(density_count.mean() / k),
        coverage=float(covered.double().mean()),
    )
