"""Side information (context) as extra inputs of a network: features of vectors, planes of images."""

from __future__ import annotations

import torch
from torch import Tensor


def append_context(h: Tensor, context: Tensor | None) -> Tensor:
    """``h`` with the context rows appended along axis 1, unchanged when ``context`` is None.

    A vector input ``(B, F)`` gains the ``C`` context features, ``(B, F + C)``; an image or
    feature map ``(B, F, H, W)`` gains one constant plane per context feature,
    ``(B, F + C, H, W)`` (the conditioning of conditional conv nets: the one-hot label of
    Mirza & Osindero, 2014, arXiv:1411.1784, broadcast over positions).

    Arguments:
        h: ``(B, F, *spatial)`` inputs.
        context: ``(B, C)`` context features (one-hot labels), or ``None``.

    Example:
        >>> append_context(torch.zeros(2, 3, 4, 4), torch.eye(2)).shape
        torch.Size([2, 5, 4, 4])
    """
    if context is None:
        return h
    planes = context.to(h.dtype).view(*context.shape, *[1] * (h.dim() - 2))  # (B, C, 1...)
    return torch.cat([h, planes.expand(-1, -1, *h.shape[2:])], 1)


__all__ = ["append_context"]
