"""Plain-text tables for the terminal; a missing value (a task the model cannot do) prints as
a dash, never as zero, and a failed one (NaN) as ``nan``, never as a dash."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DASH = "-"


def format_value(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN: a computation that failed, not a task the model cannot do
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def format_stage_seconds(seconds: dict[str, float]) -> str:
    """``"likelihood 1.2 s, sample metrics 3.4 s"``: each stage's wall seconds, in order."""
    return ", ".join(f"{name} {value:.3g} s" for name, value in seconds.items()) or DASH


def format_mean_spread(mean: Any, spread: float | None) -> str:
    """``"14.7 ± 2.1"``: the spread to two significant digits, the mean to the same decimals
    (no more digits than the spread supports); without a spread, :func:`format_value`."""
    if spread is None or not isinstance(mean, float) or not math.isfinite(spread):
        return format_value(mean)
    if spread == 0:
        return f"{format_value(mean)} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(spread)))
    return f"{mean:.{decimals}f} ± {spread:.{decimals}f}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows of dicts -> aligned text; ``columns`` are (key, header) pairs."""
    header = [title for _, title in columns]
    body = [[format_value(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in body
    ]
    return "\n".join(lines)


def format_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows of dicts -> a Markdown table; ``columns`` are (key, header) pairs."""
    lines = ["| " + " | ".join(title for _, title in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines += [
        "| " + " | ".join(format_value(row.get(k)) for k, _ in columns) + " |" for row in rows
    ]
    return "\n".join(lines)
