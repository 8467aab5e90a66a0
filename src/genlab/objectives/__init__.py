"""Losses as plain functions of tensors and distributions, each with its formula."""

from genlab.objectives.contrastive import (
    CONTRASTIVE_LOSSES,
    ContrastiveLoss,
    contrastive_loss,
    info_nce,
    nt_xent,
    ratio_loss,
)
from genlab.objectives.gather import all_gather_with_grad
from genlab.objectives.reconstruction import mean_squared_error
from genlab.objectives.variational import (
    elbo,
    iw_bound,
    kl_standard_normal,
    log_importance_weights,
    log_standard_normal,
)

__all__ = [
    "CONTRASTIVE_LOSSES",
    "ContrastiveLoss",
    "all_gather_with_grad",
    "contrastive_loss",
    "elbo",
    "info_nce",
    "iw_bound",
    "kl_standard_normal",
    "log_importance_weights",
    "log_standard_normal",
    "mean_squared_error",
    "nt_xent",
    "ratio_loss",
]
