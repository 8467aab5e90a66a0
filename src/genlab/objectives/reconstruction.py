"""Reconstruction losses."""

from __future__ import annotations

from torch import Tensor


def mean_squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    r"""Per-example mean squared error :math:`\frac1D \sum_d (\hat x_d - x_d)^2`, shape ``(batch,)``."""
    return (prediction - target).square().flatten(1).mean(1)
