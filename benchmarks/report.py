"""What every benchmark returns, and the shared printing and JSON writing.

A benchmark module has ``NAME``, ``TITLE`` and ``run(quick: bool) -> dict`` returning a
JSON-ready result with at least: ``columns`` (``[key, header]`` pairs) and ``rows`` (dicts) for
its table, ``ratios`` (from :func:`ratio`: each comparison with a peer, measured in the same
run, against its target where an issue sets one), ``notes`` (lines printed under the table)
and ``threads``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.report.table import format_table

RESULTS = Path(__file__).with_name("results")


def ratio(
    comparison: str, value: float, target: float | None = None, *, at_most: bool = False
) -> dict[str, Any]:
    """One comparison: ``value`` against ``target`` (``>= target``, or ``<= target`` when
    ``at_most``); ``met`` is None without a target."""
    met = None if target is None else (value <= target if at_most else value >= target)
    bound = None if target is None else f"{'<=' if at_most else '>='} {target:g}"
    return {"comparison": comparison, "ratio": value, "target": bound, "met": met}


def show(name: str, title: str, result: dict[str, Any]) -> None:
    """Print one benchmark's table, notes and ratios."""
    print(
        f"\n== {name}: {title} ({result['threads']} threads; timings on a shared machine are noisy)"
    )
    print(format_table(result["rows"], [tuple(c) for c in result["columns"]]))
    for line in result.get("notes", []):
        print(line)
    if result["ratios"]:
        print(format_table(result["ratios"], RATIO_COLUMNS))


RATIO_COLUMNS = [("comparison", "comparison"), ("ratio", "value"), ("target", "target"),
                 ("met", "met")]  # fmt: skip


def summary(results: dict[str, dict[str, Any]]) -> str:
    """Every benchmark's ratios in one table."""
    return format_table(
        [r for result in results.values() for r in result["ratios"]], RATIO_COLUMNS
    )


def write_json(name: str, result: dict[str, Any], folder: Path = RESULTS) -> Path:
    """``folder/<name>.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
