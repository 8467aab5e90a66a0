"""Input checks shared by the statistics: every bad input becomes a :class:`DataError`."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from genlab.errors import DataError

ArrayLike = Tensor | np.ndarray


def as_samples(x: ArrayLike, name: str = "x", *, dtype: torch.dtype = torch.float64) -> Tensor:
    """``x`` as an ``(N, D)`` floating tensor (rows are samples), on its own device.

    ``(N,)`` becomes ``(N, 1)``; ``(N, ...)`` is flattened to ``(N, D)``.

    Raises:
        DataError: for a non-numeric, scalar, empty, NaN or infinite input.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise DataError(f"{name}: expected a numeric array, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise DataError(f"{name}: expected a tensor or numpy array, got {type(x).__name__}")
    if x.dim() == 0:
        raise DataError(f"{name}: expected samples as rows, got a scalar")
    if x.is_complex():
        raise DataError(f"{name}: complex values are not supported")
    x = x.reshape(len(x), -1) if x.dim() > 1 else x.reshape(-1, 1)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{name}: no samples (shape {tuple(x.shape)})")
    x = x.to(dtype)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        row = int((~finite).any(1).nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x).any()) else "infinite values"
        raise DataError(f"{name}: contains {kind} (first in row {row})")
    return x


def as_sample_pair(
    x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 1
) -> tuple[Tensor, Tensor]:
    """Two sample sets with the same number of coordinates, on the device of ``x``."""
    a, b = as_samples(x, names[0]), as_samples(y, names[1])
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{names[0]} has {a.shape[1]} coordinates per sample but {names[1]} has {b.shape[1]}"
        )
    for t, name in ((a, names[0]), (b, names[1])):
        if len(t) < min_rows:
            raise DataError(f"{name}: needs at least {min_rows} samples, got {len(t)}")
    return a, b.to(a.device)


def as_probabilities(p: ArrayLike, name: str = "p") -> Tensor:
    """A probability vector (last axis) as float64: non-negative, finite, normalised to sum 1.

    Raises:
        DataError: for negative, NaN/inf or all-zero weights.
    """
    t = torch.as_tensor(np.asarray(p) if not isinstance(p, Tensor) else p).to(torch.float64)
    if t.dim() == 0 or t.shape[-1] == 0:
        raise DataError(f"{name}: expected a probability vector, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name}: contains NaN or infinite values")
    if bool((t < 0).any()):
        raise DataError(f"{name}: probabilities must be non-negative")
    total = t.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise DataError(f"{name}: all weights are zero")
    return t / total


def as_probability_pair(p: ArrayLike, q: ArrayLike) -> tuple[Tensor, Tensor]:
    """Two probability vectors over the same outcomes."""
    a, b = as_probabilities(p, "p"), as_probabilities(q, "q")
    if a.shape != b.shape:
        raise DataError(
            f"p and q must be over the same outcomes, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    return a, b.to(a.device)
