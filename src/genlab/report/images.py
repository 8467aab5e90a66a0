"""Sample grids (images) and scatter plots (2-D data) saved as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genlab.data.dataset import DataInfo


def to_uint8(x: Tensor, info: DataInfo) -> np.ndarray:
    """Images in data units -> ``(N, H, W, C)`` uint8 using the data's value range."""
    low, high = info.value_range
    scaled = ((x.detach().float().cpu() - low) / max(high - low, 1e-12)).clamp(0, 1)
    return (scaled * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid_png(
    x: Tensor, info: DataInfo, *, n_columns: int | None = None, scale: int = 0
) -> bytes:
    """Tile ``(N, C, H, W)`` images into one PNG, one pixel of border, upscaled for small images."""
    import io

    from PIL import Image

    images = to_uint8(x, info)
    n, h, w, c = images.shape
    cols = n_columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 40, dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        canvas[
            1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w
        ] = image
    scale = scale or max(1, 128 // max(h, w))
    picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def save_image_grid(
    x: Tensor, path: str | Path, info: DataInfo, *, n_columns: int | None = None, scale: int = 0
) -> Path:
    """:func:`image_grid_png` written to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_grid_png(x, info, n_columns=n_columns, scale=scale))
    return path


def save_scatter(
    samples: Tensor, path: str | Path, *, reference: Tensor | None = None, title: str = ""
) -> Path:
    """Scatter the first two coordinates of ``samples`` over ``reference`` (e.g. the data)."""
    from genlab.report.figures import blank_figure, save_figure  # matplotlib only when drawing

    fig = blank_figure(4.5, 4.5)
    ax = fig.subplots()
    if reference is not None:
        ref = reference.detach().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="#bbbbbb", label="data", linewidths=0)
    pts = samples.detach().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="#1f6fb4", label="samples", linewidths=0)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    return save_figure(fig, path)


def save_samples(
    samples: Tensor, path: str | Path, info: DataInfo, reference: Tensor | None = None
) -> Path:
    """A grid for images, a scatter for vectors."""
    if info.kind == "image":
        return save_image_grid(samples, path, info)
    return save_scatter(samples, path, reference=reference, title=f"samples ({info.name})")
