"""``genlab compare``: train several families on the same split and tabulate what each can do.

Every family is trained with its documented budget settings (``budgets`` on the class) and the
same seed, then evaluated on the same test split by :func:`genlab.metrics.evaluate`. A task a
family cannot do is shown as a dash.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab import data as data_module
from genlab.api import fit
from genlab.io import write_json
from genlab.metrics.evaluate import evaluate
from genlab.report.table import format_table

COLUMNS = [
    ("family", "family"),
    ("log_prob_kind", "log p"),
    ("nll_nats", "test NLL (nats)"),
    ("bits_per_dim", "bits/dim"),
    ("recon_mse", "recon MSE"),
    ("probe_accuracy", "probe acc"),
    ("knn_accuracy", "kNN acc"),
    ("train_seconds", "train s"),
]


def compare(
    data: str,
    families: Sequence[str],
    *,
    out: str | Path,
    budget: str = "fast",
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train and evaluate each family into ``out/<family>``; write ``out/scorecard.json``."""
    dataset = data_module.load(data)
    out = Path(out)
    rows = []
    for family in families:
        started = time.perf_counter()
        model = fit(
            family,
            dataset,
            out=out / family,
            seed=seed,
            device=device,
            budget=budget,
            progress=progress,
            overwrite=True,
        )
        seconds = time.perf_counter() - started
        row = evaluate(model, dataset, seed=seed)
        row["train_seconds"] = seconds
        rows.append(row)
    write_json(
        out / "scorecard.json", {"data": data, "budget": budget, "seed": seed, "families": rows}
    )
    return rows


def scorecard_table(rows: Sequence[dict[str, Any]]) -> str:
    return format_table(rows, COLUMNS)
