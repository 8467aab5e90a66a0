"""Training curves: every quantity a run logged in ``metrics.jsonl``, one panel each, as a PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SKIPPED = ("step", "epoch", "split", "seconds")
MAX_PANELS = 24
PANEL_INCHES = (3.4, 2.4)  # width, height of one panel with its labels
# inches of the grid's margins (left, right, bottom, top, and the title above) and between
# panels (across, down): laid out by hand, without tight_layout's second drawing pass
MARGINS, TITLE, GAPS = (0.5, 0.15, 0.45, 0.3), 0.25, (0.5, 0.55)


def metric_columns(records: Sequence[dict[str, Any]], split: str) -> dict[str, np.ndarray]:
    """``name -> (n, 2)`` array of (step, value) for each numeric column of one split.

    Columns are in order of first appearance; non-finite values (a divergence, an infinite
    mode KL) are dropped.
    """
    columns: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        if record.get("split") != split or "step" not in record:
            continue
        for key, value in record.items():
            if key in SKIPPED or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                columns.setdefault(key, []).append((float(record["step"]), float(value)))
    return {k: np.asarray(v) for k, v in columns.items() if v}


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start), same length as ``values``."""
    if window <= 1:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    starts = np.arange(1, len(values) + 1) - counts
    return (cumulative[1:] - cumulative[starts]) / counts


def save_training_curves(
    records: Sequence[dict[str, Any]], path: str | Path, *, title: str = ""
) -> Path | None:
    """Plot each logged quantity against the step; returns the path, or None if nothing was logged.

    Training records (``split == "train"``) are drawn faintly as logged and boldly as a moving
    average over about 1% of the run; validation records (``split == "val"``) as points.
    Quantities that are positive and span more than three decades get a log scale.
    """
    panels = [("train", k, v) for k, v in metric_columns(records, "train").items()]
    panels += [("val", k, v) for k, v in metric_columns(records, "val").items()]
    panels = panels[:MAX_PANELS]
    if not panels:
        return None
    from genlab.report.figures import blank_figure, save_figure  # matplotlib only when drawing

    n_cols = min(4, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    width, height = PANEL_INCHES[0] * n_cols, PANEL_INCHES[1] * n_rows + (TITLE if title else 0)
    fig = blank_figure(width, height, dpi=100)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    left, right, bottom, top = MARGINS
    top += TITLE if title else 0
    axes_width = (width - left - right - (n_cols - 1) * GAPS[0]) / n_cols
    axes_height = (height - bottom - top - (n_rows - 1) * GAPS[1]) / n_rows
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height,
        top=1 - top / height, wspace=GAPS[0] / axes_width, hspace=GAPS[1] / axes_height,
    )  # fmt: skip
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (split, name, data) in zip(axes.flat, panels, strict=False):
        steps, values = data[:, 0], data[:, 1]
        if split == "train":
            window = max(1, len(values) // 100)
            ax.plot(steps, values, color="#9ecae1", linewidth=0.5)
            ax.plot(steps, moving_average(values, window), color="#08519c", linewidth=1.2)
        else:
            ax.plot(steps, values, "o-", color="#a63603", markersize=3, linewidth=1)
        if values.min() > 0 and values.max() / values.min() > 1e3:
            ax.set_yscale("log")
        ax.set_title(name if split == "train" else f"{name} (validation)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, tight=False)
