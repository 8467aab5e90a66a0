"""Conditional sampling, scored: complete the unobserved half of each test example.

The observed part is the top half of an image (the first half of a vector's coordinates, see
:func:`genlab.samplers.top_half_mask`). For each test example the model draws completions with
``sample_conditional``; then

- ``completion_mse`` is the mean squared error over the unobserved coordinates, in data units,
  averaged over completions;
- ``completion_accuracy`` (labelled image data) is the domain classifier's accuracy on the
  completed images (put on the data's grid, as for every sample metric) against the true labels.

The baseline fills the unobserved coordinates with their training mean.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.data.dataset import Dataset
from genlab.metrics.domain import DomainClassifier, accuracy
from genlab.metrics.sample_quality import to_data_grid
from genlab.models.base import GenerativeModel
from genlab.samplers import top_half_mask

CHUNK = 256


def _scores(
    completed: Tensor, data: Dataset, mask: Tensor, classifier: DomainClassifier | None
) -> dict[str, float]:
    """``completed``: ``(n, N, *event_shape)`` completions of the test split."""
    missing = ~mask.expand_as(data.x_test)
    errors = (completed - data.x_test).square()[:, missing]  # (n, n_missing_total)
    scores = {"completion_mse": float(errors.mean())}
    if classifier is not None and data.y_test is not None:
        grid = to_data_grid(completed, data.info)
        scores["completion_accuracy"] = sum(
            accuracy(classifier, c, data.y_test) for c in grid
        ) / len(grid)
    return scores


@torch.no_grad()
def completion_scores(
    model: GenerativeModel,
    data: Dataset,
    *,
    classifier: DomainClassifier | None = None,
    n_completions: int = 1,
    seed: int = 0,
    **options: Any,
) -> dict[str, Any]:
    """``completion_mse`` and (with a classifier) ``completion_accuracy`` of ``model``.

    ``options`` go to ``model.sample_conditional`` (e.g. a family's other sampler,
    ``method="replace"`` for diffusion).
    """
    if not model.capabilities.supports("conditional"):
        raise model.unsupported("sample_conditional")
    model.eval()
    mask = top_half_mask(data.info.event_shape)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    chunks = [
        model.sample_conditional(
            x.to(model.device), mask, n_completions, generator=generator, **options
        ).cpu()
        for x in data.x_test.split(CHUNK)
    ]
    return _scores(torch.cat(chunks, dim=1), data, mask, classifier)


def mean_fill_scores(
    data: Dataset, *, classifier: DomainClassifier | None = None
) -> dict[str, Any]:
    """The baseline: unobserved coordinates set to their mean over the training split."""
    mask = top_half_mask(data.info.event_shape)
    filled = torch.where(mask, data.x_test, data.x_train.mean(0))
    return _scores(filled.unsqueeze(0), data, mask, classifier)
