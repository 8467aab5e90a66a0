"""Seeded splits and index-slice batching of in-memory tensors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from genlab.errors import DataError


def split_indices(
    n: int, test_fraction: float, seed: int, labels: Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (train, test) indices; stratified when labels are given.

    Stratified means every class keeps its proportion in both parts (as scikit-learn's
    ``train_test_split(..., stratify=labels)``), which is what the field's probe numbers assume.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise DataError(f"cannot split {n} examples with test fraction {test_fraction}")
    from sklearn.model_selection import train_test_split

    stratify = None
    if labels is not None:
        counts = np.bincount(labels.numpy())
        if counts[counts > 0].min() >= 2 and n_test >= (counts > 0).sum():
            stratify = labels.numpy()
    train, test = train_test_split(
        np.arange(n), test_size=n_test, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(test)


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
) -> Iterator[Tensor]:
    """Yield index tensors of a random permutation of ``range(n)``, ``batch_size`` at a time."""
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def chunks(x: Tensor, size: int) -> Iterator[Tensor]:
    """Consecutive slices of ``x`` along the first axis (for bounded-memory evaluation)."""
    for start in range(0, x.shape[0], size):
        yield x[start : start + size]
