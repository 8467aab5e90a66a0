"""Matplotlib figures: one place for the canvas, the style and the file format.

Every figure genlab draws is a :class:`matplotlib.figure.Figure` on its own Agg canvas, never a
pyplot figure: genlab leaves the user's backend (``matplotlib.use``, ``MPLBACKEND``) and
pyplot's list of open figures alone, and a figure is freed when nothing refers to it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genlab.io import atomic_write_bytes

PALETTE = ("#1f6fb4", "#d1495b", "#2e9e5b", "#edae49", "#6c4f9c", "#00798c", "#444444")


def blank_figure(width: float, height: float, *, dpi: int = 110) -> Figure:
    """An empty ``width`` x ``height`` inch figure that renders with Agg (add axes with
    ``fig.subplots``)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def new_figure(
    n_panels: int = 1, *, width: float = 4.2, height: float = 3.6
) -> tuple[Figure, Any]:
    """A figure with ``n_panels`` side by side; returns (figure, axes array or single axes)."""
    fig = blank_figure(width * n_panels, height)
    axes = fig.subplots(1, n_panels, squeeze=False)
    return fig, axes[0] if n_panels > 1 else axes[0, 0]


def figure_png(fig: Figure, *, tight: bool = True) -> bytes:
    """``fig`` as PNG bytes; ``tight`` first fits the axes to their labels
    (``tight_layout``: one more drawing pass), which a figure laid out by hand skips."""
    buffer = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, *, tight: bool = True) -> Path:
    """Write ``fig`` as PNG (``tight`` as :func:`figure_png`), atomically (a kill leaves the
    old picture or the new one)."""
    path = Path(path)
    atomic_write_bytes(path, figure_png(fig, tight=tight))
    return path
