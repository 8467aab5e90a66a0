r"""Discrete divergences between two *samples*, through their empirical distributions.

TV, KL and JS need probability vectors. From samples genlab builds them as follows:

- **discrete data** (every value an integer, e.g. digits 0..16 or category codes): the
  empirical pmfs over the distinct rows seen in either sample,
  :math:`\hat p(v) = \#\{i: x_i = v\}/n`; exact for the empirical distributions;
- **continuous data in at most** :data:`MAX_BINNED_DIM` **dimensions**: ``bins`` equal-width
  bins per axis over the range of the pooled sample (:math:`\text{bins}^d` cells);
- anything else raises :class:`DataError` (use ``knn-kl``, ``mmd``, ``energy``...).

A ``pseudocount`` :math:`a` (add :math:`a` to every cell of both histograms) keeps KL finite
when a cell is empty in one sample; these are plug-in estimates of the divergence between
the discretised distributions and are biased upward for small samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import ConfigError, DataError
from genlab.stats.divergences import F_DIVERGENCES, f_divergence
from genlab.stats.validation import ArrayLike, as_sample_pair

MAX_BINNED_DIM = 3
MAX_CATEGORIES = 100_000


def empirical_histograms(
    x: ArrayLike, y: ArrayLike, *, bins: int = 20
) -> tuple[Tensor, Tensor, str]:
    """Counts of ``x`` and ``y`` over shared cells, and how the cells were made.

    Returns:
        ``(counts_x, counts_y, kind)`` with ``kind`` ``"categories"`` (distinct rows of
        integer-valued data) or ``"bins"`` (a grid, module docstring).
    """
    check(bins >= 1, f"bins must be positive, got {bins}")
    a, b = as_sample_pair(x, y)
    z = torch.cat([a, b])
    if bool((z == z.round()).all()):
        _, cells = torch.unique(z, dim=0, return_inverse=True)
        n_cells = int(cells.max()) + 1
        if n_cells <= MAX_CATEGORIES:
            counts = torch.stack(
                [
                    torch.bincount(cells[: len(a)], minlength=n_cells),
                    torch.bincount(cells[len(a) :], minlength=n_cells),
                ]
            ).double()
            return counts[0], counts[1], "categories"
    if z.shape[1] > MAX_BINNED_DIM:
        raise DataError(
            f"histogram divergences need integer-valued data or at most {MAX_BINNED_DIM} "
            f"coordinates, got {z.shape[1]} continuous coordinates; use knn-kl, mmd, energy, "
            "wasserstein or frechet"
        )
    low, high = z.min(0).values, z.max(0).values
    width = torch.where(high > low, high - low, torch.ones_like(high))
    index = ((z - low) / width * bins).floor().long().clamp_(0, bins - 1)  # (N, d)
    flat = (index * bins ** torch.arange(z.shape[1], device=z.device)).sum(1)
    n_cells = bins ** z.shape[1]
    counts_x = torch.bincount(flat[: len(a)], minlength=n_cells).double()
    counts_y = torch.bincount(flat[len(a) :], minlength=n_cells).double()
    return counts_x, counts_y, "bins"


def histogram_divergence(
    x: ArrayLike,
    y: ArrayLike,
    divergence: str = "tv",
    *,
    bins: int = 20,
    pseudocount: float = 0.0,
) -> float:
    r"""A divergence of :data:`~genlab.stats.divergences.F_DIVERGENCES` between the empirical
    distributions of two samples (module docstring), e.g. ``"tv"``, ``"kl"``, ``"js"``.

    ``"kl"`` is :math:`\mathrm{KL}(\hat P_x \| \hat P_y)`.
    """
    if divergence not in F_DIVERGENCES:
        raise ConfigError(
            f"unknown divergence {divergence!r}; choose one of {', '.join(F_DIVERGENCES)}"
        )
    check(pseudocount >= 0, f"pseudocount must be non-negative, got {pseudocount}")
    counts_x, counts_y, _ = empirical_histograms(x, y, bins=bins)
    return float(f_divergence(counts_x + pseudocount, counts_y + pseudocount, divergence))
