"""Pairs of examples side by side (near-duplicates, nearest neighbours) saved as PNG."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.data.dataset import DataInfo
from genlab.report.images import save_image_grid


def save_pairs(
    a: Tensor, b: Tensor, path: str | Path, info: DataInfo, *, title: str = "pairs"
) -> Path:
    """Images: ``a`` on the top row and ``b`` below, pair ``i`` in column ``i``.
    Vectors: the first two coordinates of each pair joined by a segment."""
    if len(a) != len(b):
        raise ValueError(f"save_pairs needs as many a as b, got {len(a)} and {len(b)}")
    if info.kind == "image":
        if len(a) == 0:
            a = b = torch.zeros(1, *info.event_shape)
        return save_image_grid(torch.cat([a, b]), path, info, n_columns=len(a))
    from genlab.report.figures import blank_figure, save_figure  # matplotlib only when drawing

    fig = blank_figure(4.5, 4.5)
    ax = fig.subplots()
    pa, pb = a.reshape(len(a), -1).cpu().numpy(), b.reshape(len(b), -1).cpu().numpy()
    for u, v in zip(pa, pb, strict=True):
        ax.plot(
            [u[0], v[0]],
            [u[1] if len(u) > 1 else 0, v[1] if len(v) > 1 else 0],
            "-o",
            ms=3,
            lw=1,
            c="#1f6fb4",
        )
    ax.set_title(title)
    return save_figure(fig, path)
