r"""Test log-likelihood in nats and bits per dimension, honest about discrete data.

For continuous data this is :math:`\log p(x)`. For data with :math:`L` levels spaced
:math:`\delta` apart, a density on dequantised values :math:`\tilde x = x + \delta(u - \tfrac12)`,
:math:`u \sim U[0,1)^D`, bounds the discrete likelihood (Theis et al., 2016):

.. math::
    \log P(x) \ge \mathbb E_u\!\left[\log p(\tilde x)\right] + D \log \delta .

Rescaled to :math:`y \in [0,1]^D`, this is the field's bits/dim,
:math:`\mathrm{bpd} = \frac{-\log p(y) + D \log L}{D \log 2} = \frac{-\log P(x)}{D \log 2}`.
Each example gets one draw of :math:`u` from a seeded generator.

For text (token sequences) the field's numbers are per token (:func:`token_scores`): the
negative log-likelihood per token weighted by tokens over the whole split, its bits per
character and the perplexity.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genlab.data.dataset import PAD_TOKEN, DataInfo, dequantize
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


def token_scores(log_likelihoods: Tensor, x: Tensor) -> dict[str, float]:
    r"""Per-token scores of a text split from its items' log-likelihoods ``(N,)`` (nats).

    .. math::
        \mathrm{NLL} = -\frac{\sum_i \log p(x_i)}{\sum_i |x_i|}, \qquad
        \text{bits/char} = \frac{\mathrm{NLL}}{\log 2}, \qquad
        \text{perplexity} = e^{\mathrm{NLL}},

    with :math:`|x_i|` the tokens of item :math:`i` that count: its characters and its end
    token, not its padding. The mean is over every token of the split (weighted by tokens, not
    a mean of per-item or per-batch means). Every token is one character (the end token is the
    newline), so bits per character are bits per token.

    Returns ``nll_per_token`` (nats), ``bits_per_char``, ``perplexity`` and ``n_tokens``.
    """
    n_tokens = int((x != PAD_TOKEN).sum())
    nll = -float(log_likelihoods.double().sum()) / n_tokens
    return {
        "nll_per_token": nll,
        "bits_per_char": nll / math.log(2.0),
        "perplexity": math.exp(nll),
        "n_tokens": n_tokens,
    }
