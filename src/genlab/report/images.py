"""Sample grids (images) and scatter plots (2-D data) saved as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genlab.data.dataset import DataInfo
from genlab.data.text import decode_tokens
from genlab.errors import ConfigError
from genlab.io import atomic_write_bytes

# The largest picture genlab draws (PIL refuses images about this big as decompression bombs).
MAX_PICTURE_PIXELS = 2**26


def to_uint8(x: Tensor, info: DataInfo) -> np.ndarray:
    """Images in data units -> ``(N, H, W, C)`` uint8 using the data's value range."""
    low, high = info.value_range
    scaled = ((x.detach().float().cpu() - low) / max(high - low, 1e-12)).clamp(0, 1)
    return (scaled * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid_layout(
    n: int, info: DataInfo, *, n_columns: int | None = None, scale: int = 0
) -> tuple[int, int, int]:
    """``(rows, columns, scale)`` of a grid of ``n`` images (see :func:`image_grid_png`).

    Raises:
        ConfigError: the picture would have more than :data:`MAX_PICTURE_PIXELS` pixels.
    """
    _, h, w = info.event_shape
    cols = n_columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scale = scale or max(1, 128 // max(h, w))
    height, width = (rows * (h + 1) + 1) * scale, (cols * (w + 1) + 1) * scale
    if height * width > MAX_PICTURE_PIXELS:
        raise ConfigError(
            f"a grid of {n:,} images of {h}x{w} would be a {width:,} x {height:,} picture, more "
            f"than the {MAX_PICTURE_PIXELS:,} pixels genlab draws: draw fewer samples, or write "
            "them to a .npy file"
        )
    return rows, cols, scale


def image_grid_png(
    x: Tensor, info: DataInfo, *, n_columns: int | None = None, scale: int = 0
) -> bytes:
    """Tile ``(N, C, H, W)`` images into one PNG, one pixel of border, upscaled for small images."""
    import io

    from PIL import Image

    rows, cols, scale = grid_layout(len(x), info, n_columns=n_columns, scale=scale)
    images = to_uint8(x, info)
    n, h, w, c = images.shape
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 40, dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        canvas[
            1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w
        ] = image
    picture = Image.fromarray(canvas[..., 0] if c in (1, 2) else canvas)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def save_image_grid(
    x: Tensor, path: str | Path, info: DataInfo, *, n_columns: int | None = None, scale: int = 0
) -> Path:
    """:func:`image_grid_png` written to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, image_grid_png(x, info, n_columns=n_columns, scale=scale))
    return path


def save_scatter(
    samples: Tensor, path: str | Path, *, reference: Tensor | None = None, title: str = ""
) -> Path:
    """Scatter the first two coordinates of ``samples`` over ``reference`` (e.g. the data);
    one-coordinate data gets two histograms instead. ``title`` is drawn as plain text (a ``$``
    in a file name is not mathematics)."""
    from genlab.report.figures import blank_figure, save_figure  # matplotlib only when drawing

    fig = blank_figure(4.5, 4.5)
    ax = fig.subplots()
    pts = samples.detach().cpu().reshape(len(samples), -1).numpy()
    ref = None if reference is None else reference.detach().cpu().reshape(len(reference), -1)
    if pts.shape[1] == 1:
        for values, colour, label in ((ref, "#bbbbbb", "data"), (pts, "#1f6fb4", "samples")):
            if values is not None:
                ax.hist(np.asarray(values)[:, 0], bins=50, density=True, color=colour,
                        alpha=0.7, label=label)  # fmt: skip
    else:
        if ref is not None:
            ax.scatter(ref[:, 0], ref[:, 1], s=2, c="#bbbbbb", label="data", linewidths=0)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="#1f6fb4", label="samples", linewidths=0)
        ax.set_aspect("equal")
    ax.set_title(title, parse_math=False)
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    return save_figure(fig, path)


def save_samples(
    samples: Tensor, path: str | Path, info: DataInfo, reference: Tensor | None = None
) -> Path:
    """A grid for images, a scatter for vectors, one item per line for text (``.txt``)."""
    if info.kind == "text":
        path = Path(path).with_suffix(".txt")
        lines = decode_tokens(samples, info.vocabulary, info.text_units or "lines")
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
        return path
    if info.kind == "image":
        return save_image_grid(samples, path, info)
    return save_scatter(samples, path, reference=reference, title=f"samples ({info.name})")
