r"""Ancestral sampling of autoregressive models, and exact completion of a prefix.

An autoregressive model factorises :math:`p(x) = \prod_{i} p(x_{\sigma_i} \mid
x_{\sigma_{<i}})` in an ordering :math:`\sigma`. Drawing each coordinate in turn from its
conditional (ancestral sampling) gives exact draws; when the observed coordinates are the
first :math:`k` of the ordering (a *prefix*: the top rows of an image in raster order, the first
characters of a word), starting the loop at :math:`k` with them in place gives exact draws of
:math:`x_u \sim p(x_u \mid x_o)` (:func:`prefix_length` tells whether a mask is one).

Two loops, one per kind of data:

- :func:`sample_in_order` for vectors and images: the model maps a whole (partly filled)
  example to every coordinate's conditional parameters (MADE, PixelCNN), one forward pass per
  drawn coordinate;
- :func:`sample_tokens` for token sequences: the model maps new tokens and a state (a
  key/value cache, or simply the history) to the next token's logits, so a transformer with a
  cache does :math:`O(t)` work per token; items stop at the end token and are padded.

Categorical draws use one uniform per draw by inversion of the CDF (:func:`draw_categorical`),
so the same generator gives the same tokens whatever computed the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from genlab.data.dataset import END_TOKEN, PAD_TOKEN

# (new tokens (B, s), state or None) -> (logits (B, s, V) of the token after each, new state)
TokenStep = Callable[[Tensor, Any], tuple[Tensor, Any]]
P = TypeVar("P")  # the parameters a pass hands to the draw (a tensor, or a pair when guided)


def draw_categorical(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""``(B,)`` draws from :math:`\mathrm{softmax}(\text{logits})`, ``(B, V)``, by inversion:
    the first :math:`v` with :math:`\sum_{w \le v} p_w > u`, :math:`u \sim U[0, 1)`."""
    probs = torch.softmax(logits.double(), dim=-1)
    u = torch.rand(len(probs), 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    return (cdf <= u * cdf[:, -1:]).sum(-1).clamp_max(probs.shape[-1] - 1)


def prefix_length(observed: Tensor, order: Tensor) -> int | None:
    """``k`` if the observed coordinates are exactly the first ``k`` of ``order``, else ``None``.

    Arguments:
        observed: ``(D,)`` bool.
        order: ``(D,)`` the coordinates in the order they are drawn (a permutation of 0..D-1).
    """
    k = int(observed.sum())
    return k if bool(observed[order[:k]].all()) else None


@torch.no_grad()
def sample_in_order(
    conditionals: Callable[[Tensor, int], P],
    draw: Callable[[P, int, torch.Generator | None], Tensor],
    x: Tensor,
    order: Tensor,
    start: int = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``x`` ``(B, D)`` coordinate by coordinate in ``order[start:]``; returns a new tensor.

    Arguments:
        conditionals: ``(x (B, D), d)`` -> the parameters of the coordinates' conditionals,
            of which the pass reads coordinate ``d``'s alone (a model may compute only what
            ``d`` needs and leave the others stale); those of coordinate ``order[i]`` may
            depend on ``x[:, order[:i]]`` only.
        draw: ``(parameters, d, generator)`` -> ``(B,)`` draws of coordinate ``d`` (e.g.
            :meth:`genlab.nn.likelihoods.Likelihood.sample_coordinate`).
        order: ``(D,)`` coordinates in drawing order; ``order[:start]`` are given in ``x``.
    """
    x = x.clone()
    for d in order[start:].tolist():  # one forward pass per drawn coordinate
        x[:, d] = draw(conditionals(x, d), d, generator).to(x.dtype)
    return x


@torch.no_grad()
def sample_tokens(
    step: TokenStep,
    tokens: Tensor,
    start: int,
    *,
    end: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill positions ``start..T-1`` of ``tokens`` ``(B, T)`` by ancestral sampling.

    The context of position :math:`t` is the end token (the start of every item) followed by
    the tokens before :math:`t`. With ``end`` (items that end): an item stops at its end token
    and the positions after it are :data:`~genlab.data.dataset.PAD_TOKEN`; an item with an end
    token among its given tokens is complete and only padded; and the last position can only
    be the end token (every item fits the length, as in the models' likelihood).

    Arguments:
        step: the model's next-token logits (see :data:`TokenStep`); called first with the
            end token and the given prefix, then with one new token at a time.
        tokens: ``(B, T)`` int64; positions ``< start`` are given (the prefix).
        start: the prefix length, the same for every row.

    Returns:
        ``(B, T)`` int64 tokens.
    """
    b, length = tokens.shape
    out = tokens.clone()
    out[:, start:] = PAD_TOKEN
    prefix = out[:, :start]
    done = (
        ((prefix == END_TOKEN) | (prefix == PAD_TOKEN)).any(1)
        if end
        else torch.zeros(b, dtype=torch.bool, device=tokens.device)
    )
    if start == length:
        return out
    first = torch.full((b, 1), END_TOKEN, dtype=torch.long, device=tokens.device)
    logits, state = step(torch.cat([first, prefix.clamp_min(0)], dim=1), None)
    for t in range(start, length):
        next_logits = logits[:, -1]
        if end and t == length - 1:  # the last position can only end the item
            next_logits = torch.full_like(next_logits, -torch.inf)
            next_logits[:, END_TOKEN] = 0.0
        token = draw_categorical(next_logits, generator)
        out[:, t] = torch.where(done, PAD_TOKEN, token)
        if end:
            done = done | (token == END_TOKEN)
        if t + 1 < length:
            logits, state = step(token[:, None], state)
    return out
