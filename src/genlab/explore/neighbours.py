"""Nearest neighbours in code (or data) space, in chunks so memory stays bounded."""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK = 2048


def nearest_neighbours(queries: Tensor, reference: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
    """Euclidean ``k`` nearest rows of ``reference`` for each row of ``queries``.

    Returns ``(distances, indices)``, each ``(n_queries, k)``, nearest first. Memory is
    ``O(CHUNK * len(reference))`` whatever the number of queries.
    """
    queries, reference = queries.flatten(1), reference.flatten(1)
    distances, indices = [], []
    for chunk in queries.split(CHUNK):
        d = torch.cdist(chunk.to(reference), reference)
        values, index = d.topk(k, dim=1, largest=False)
        distances.append(values)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)
