r"""What every ``sample_conditional`` shares: masks, observed values kept, one pattern at a time.

A family completes :math:`x = (x_o, x_u)` by drawing :math:`x_u \sim p(x_u \mid x_o)`. The mask
may differ between examples; :func:`complete` groups the examples by mask pattern, asks for
``n`` draws of the unobserved coordinates of each group (a :data:`Fill`), and writes them next
to the observed values, which are copied from ``x`` unchanged. A sampler therefore only ever sees
one pattern, so its unobserved coordinates form a fixed-size vector. Given ``context`` (side
information, one row per example), each group's rows of it go to the fill as ``context=``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError

# (rows (R, D) data of R examples sharing a pattern, observed (D,) bool, n) -> (n, R, U) draws of
# the U unobserved coordinates, in the order of ``(~observed).nonzero()``; with context, the
# fill also takes the rows' context as the keyword ``context``
Fill = Callable[..., Tensor]


def broadcast_mask(mask: Tensor, x: Tensor) -> Tensor:
    """Bool mask of ``x``'s shape from an ``event_shape`` or ``(batch, *event_shape)`` mask."""
    mask = torch.as_tensor(mask, device=x.device).bool()
    if mask.shape == x.shape[1:]:
        return mask.expand_as(x)
    if mask.shape == x.shape:
        return mask
    raise DataError(
        f"mask has shape {tuple(mask.shape)}, expected {tuple(x.shape[1:])} or {tuple(x.shape)}"
    )


def top_half_mask(event_shape: tuple[int, ...]) -> Tensor:
    """Bool mask of ``event_shape``, True on the observed part: the top rows of an image
    ``(C, H, W)``, or the first half of a vector's coordinates (the x-coordinate of 2-D data)."""
    mask = torch.zeros(event_shape, dtype=torch.bool)
    if len(event_shape) == 3:
        mask[..., : event_shape[-2] // 2, :] = True
    else:
        mask[: max(1, event_shape[0] // 2)] = True
    return mask


def complete(
    x: Tensor, mask: Tensor, n: int, fill: Fill, *, context: Tensor | None = None
) -> Tensor:
    """``(n, batch, *event_shape)`` completions of ``x``: observed values copied, the rest filled.

    Arguments:
        x: ``(batch, *event_shape)`` data; only the observed coordinates are read.
        mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
        n: completions per example.
        fill: draws the unobserved coordinates of the examples that share a mask pattern.
        context: ``(batch, ...)`` side information; its rows of each group go to ``fill``.
    """
    check(n >= 1, f"sample_conditional: n (completions per example) must be >= 1, got {n}")
    observed = broadcast_mask(mask, x).flatten(1)  # (B, D)
    flat = x.flatten(1)
    out = flat.unsqueeze(0).repeat(n, 1, 1)  # (n, B, D)
    patterns, which = torch.unique(observed, dim=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        if bool(pattern.all()):
            continue
        rows = (which == p).nonzero().squeeze(1)
        if context is None:
            values = fill(flat[rows], pattern, n)  # (n, R, U)
        else:
            values = fill(flat[rows], pattern, n, context=context[rows.to(context.device)])
        out[:, rows[:, None], (~pattern).nonzero().squeeze(1)] = values.to(out.dtype)
    return out.view(n, *x.shape)
