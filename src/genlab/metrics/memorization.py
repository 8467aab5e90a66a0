r"""Memorisation: is each generated sample closer to the training set than to the test set?

For each sample :math:`g_j`, :math:`d^{tr}_j` is the distance to its nearest training example
and :math:`d^{te}_j` to its nearest test example. The training set is first subsampled (seeded)
to the size of the test set, so that for a model that never saw either set the two are
exchangeable and :math:`\Pr(d^{tr}_j < d^{te}_j) = 1/2`. Reported:

- ``fraction_closer_to_train`` :math:`\hat f = \frac1M\sum_j 1[d^{tr}_j < d^{te}_j]`
  (about 0.5 without memorisation, towards 1 for a model that copies training examples);
- ``p_value`` of the one-sided binomial test of :math:`f = 1/2` against :math:`f > 1/2`;
- ``distance_ratio``: median :math:`d^{tr}` over median :math:`d^{te}` (below 1: samples
  sit closer to training examples).

Distances are Euclidean in whatever space the inputs are given (data units by default).

References:
    Meehan, Chaudhuri & Dasgupta, "A non-parametric test to detect data-copying in generative
    models", AISTATS 2020, arXiv:2004.05675.
    van den Burg & Williams, "On memorization in probabilistic deep generative models",
    NeurIPS 2021, arXiv:2106.03216.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.errors import DataError
from genlab.stats.knn import knn_distances
from genlab.stats.validation import ArrayLike, as_samples


@dataclass(frozen=True)
class MemorizationResult:
    """Per-sample nearest distances ``(M,)`` and their summaries (module docstring)."""

    distance_to_train: Tensor
    distance_to_test: Tensor
    fraction_closer_to_train: float
    p_value: float
    distance_ratio: float

    def to_json(self) -> dict[str, float]:
        return {
            "memorization_fraction": self.fraction_closer_to_train,
            "memorization_p_value": self.p_value,
            "memorization_distance_ratio": self.distance_ratio,
        }


def memorization(
    samples: ArrayLike,
    x_train: ArrayLike,
    x_test: ArrayLike,
    *,
    generator: torch.Generator | None = None,
) -> MemorizationResult:
    """Nearest-train vs nearest-test distances of generated ``samples`` (module docstring)."""
    from scipy.stats import binom

    g = as_samples(samples, "samples")
    train = as_samples(x_train, "x_train").to(g.device)
    test = as_samples(x_test, "x_test").to(g.device)
    if not g.shape[1] == train.shape[1] == test.shape[1]:
        raise DataError(
            f"samples, train and test have {g.shape[1]}, {train.shape[1]} and "
            f"{test.shape[1]} coordinates"
        )
    if len(train) > len(test):
        train = train[torch.randperm(len(train), generator=generator)[: len(test)].to(g.device)]
    d_train = knn_distances(g, train, 1)
    d_test = knn_distances(g, test, 1)
    closer = int((d_train < d_test).sum())
    median_test = float(d_test.median())
    ratio = float(d_train.median()) / median_test if median_test > 0 else float("nan")
    return MemorizationResult(
        d_train.cpu(),
        d_test.cpu(),
        closer / len(g),
        float(binom.sf(closer - 1, len(g), 0.5)),
        ratio,
    )
