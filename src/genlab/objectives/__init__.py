"""Losses as plain functions of tensors and distributions, each with its formula."""

from genlab.objectives.reconstruction import mean_squared_error
from genlab.objectives.variational import (
    elbo,
    iw_bound,
    kl_standard_normal,
    log_diagonal_normal,
    log_importance_weights,
    log_standard_normal,
)

__all__ = [
    "elbo",
    "iw_bound",
    "kl_standard_normal",
    "log_diagonal_normal",
    "log_importance_weights",
    "log_standard_normal",
    "mean_squared_error",
]
