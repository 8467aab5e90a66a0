r"""Test log-likelihood in nats and bits per dimension, honest about discrete data.

For continuous data this is :math:`\log p(x)`. For data with :math:`L` levels spaced
:math:`\delta` apart, a density on dequantised values :math:`\tilde x = x + \delta(u - \tfrac12)`,
:math:`u \sim U[0,1)^D`, bounds the discrete likelihood (Theis et al., 2016):

.. math::
    \log P(x) \ge \mathbb E_u\!\left[\log p(\tilde x)\right] + D \log \delta .

Rescaled to :math:`y \in [0,1]^D`, this is the field's bits/dim,
:math:`\mathrm{bpd} = \frac{-\log p(y) + D \log L}{D \log 2} = \frac{-\log P(x)}{D \log 2}`.
Each example gets one draw of :math:`u` from a seeded generator.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genlab.data.dataset import DataInfo, dequantize
from genlab.models.base import GenerativeModel

CHUNK = 512


@torch.no_grad()
def log_likelihood(
    model: GenerativeModel,
    x: Tensor,
    info: DataInfo,
    *,
    generator: torch.Generator | None = None,
    chunk_size: int = CHUNK,
    context: Tensor | None = None,
    **log_prob_kwargs: Any,
) -> Tensor:
    """``(N,)`` per-example log-likelihood in nats (a lower bound for discrete data; see module).

    Families whose ``log_prob`` samples (``default_importance_samples`` set) draw their noise
    from ``generator`` too, unless ``log_prob_kwargs`` names another. ``context`` (one row per
    example) is the side information of a family that models :math:`p(x \\mid y)`.
    """
    if model.capabilities.log_prob == "none":
        raise model.unsupported("log_prob")
    if model.default_importance_samples is not None:
        log_prob_kwargs.setdefault("generator", generator)
    out = []
    log_step = 0.0 if info.level_step is None else info.n_features * math.log(info.level_step)
    for start in range(0, len(x), chunk_size):
        chunk = x[start : start + chunk_size].to(model.device)
        if context is not None:
            log_prob_kwargs["context"] = context[start : start + chunk_size].to(model.device)
        y = dequantize(chunk, info, generator) if info.levels is not None else chunk
        out.append(model.log_prob(y, **log_prob_kwargs).double().cpu() + log_step)
    return torch.cat(out)


def bits_per_dim(mean_log_likelihood: float, info: DataInfo) -> float:
    r""":math:`-\overline{\log P(x)} / (D \log 2)`."""
    return -mean_log_likelihood / (info.n_features * math.log(2.0))
