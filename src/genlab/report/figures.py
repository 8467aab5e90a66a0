"""Matplotlib figures: one place that picks the backend, the style and the file format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PALETTE = ("#1f6fb4", "#d1495b", "#2e9e5b", "#edae49", "#6c4f9c", "#00798c", "#444444")


def new_figure(
    n_panels: int = 1, *, width: float = 4.2, height: float = 3.6
) -> tuple[Figure, Any]:
    """A figure with ``n_panels`` side by side; returns (figure, axes array or single axes)."""
    fig, axes = plt.subplots(
        1, n_panels, figsize=(width * n_panels, height), dpi=110, squeeze=False
    )
    return fig, axes[0] if n_panels > 1 else axes[0, 0]


def figure_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (the figure is released)."""
    import io

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
