"""``genlab compare``: the scorecard. Every family on the same split, every task it can do.

For each family, :func:`compare` trains a model with the family's documented settings for the
budget (``budgets`` on the class; a run already in ``OUT/<family>`` with identical settings is
reused), then measures on the test split:

- generation: domain FID, precision and recall (labelled image data: features of the domain
  network, :mod:`genlab.metrics.sample_quality`); modes captured and high-quality fraction
  (2-D mixtures);
- density: test NLL in nats and bits/dim, with ``log_prob_kind`` (exact or bound);
- representation: linear-probe and k-NN accuracy of ``encode(x)`` (labelled data);
- conditional sampling: completion accuracy and MSE of the bottom half given the top half
  (:mod:`genlab.metrics.completion`), next to the mean-fill baseline;
- training time.

A task a family cannot do is ``None`` in ``scorecard.json`` and a dash in the table and report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import data as data_module
from genlab.api import fit, load, resolve_settings
from genlab.config import to_dict
from genlab.data.dataset import Dataset
from genlab.io import write_json
from genlab.metrics.completion import completion_scores, mean_fill_scores
from genlab.metrics.domain import DomainClassifier, domain_network
from genlab.metrics.evaluate import evaluate
from genlab.metrics.sample_quality import sample_quality
from genlab.models import FAMILIES, GenerativeModel
from genlab.report.family import capability_badges, family_pictures
from genlab.report.html import Column, Picture, Section, render_report, write_report
from genlab.report.table import format_table
from genlab.runs import RunDirectory

SCORE_KEYS = (
    "fid", "precision", "recall", "modes_captured", "hq_fraction", "nll_nats", "bits_per_dim",
    "log_prob_kind", "probe_accuracy", "knn_accuracy", "completion_accuracy", "completion_mse",
    "train_seconds",
)  # fmt: skip

COLUMNS = [
    Column("family", "family"),
    Column("fid", "domain FID", "generation"),
    Column("precision", "precision", "generation"),
    Column("recall", "recall", "generation"),
    Column("modes_captured", "modes", "generation"),
    Column("hq_fraction", "high quality", "generation"),
    Column("log_prob_kind", "log p", "density"),
    Column("nll_nats", "NLL (nats)", "density"),
    Column("bits_per_dim", "bits/dim", "density"),
    Column("probe_accuracy", "linear probe", "representation"),
    Column("knn_accuracy", "k-NN", "representation"),
    Column("completion_accuracy", "accuracy", "conditional"),
    Column("completion_mse", "MSE", "conditional"),
    Column("train_seconds", "train s", "cost"),
]


@dataclass
class Scorecard:
    data: str
    budget: str
    seed: int
    rows: list[dict[str, Any]]
    baseline: dict[str, Any]
    report_path: Path
    json_path: Path
    columns: list[Column]

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "budget": self.budget,
            "seed": self.seed,
            "families": {row["family"]: row for row in self.rows},
            "baselines": {"mean_fill": self.baseline},
        }


def _columns_for(dataset: Dataset) -> list[Column]:
    """Only the columns that can have a value on this kind of data."""
    image_labelled = dataset.info.kind == "image" and dataset.y_train is not None
    skip = set()
    if not image_labelled:
        skip |= {"fid", "precision", "recall", "completion_accuracy"}
    if dataset.info.mode_centres is None:
        skip |= {"modes_captured", "hq_fraction"}
    if dataset.y_train is None:
        skip |= {"probe_accuracy", "knn_accuracy"}
    return [c for c in COLUMNS if c.key not in skip]


def _trained(
    family: str, dataset: Dataset, spec: str, run_path: Path, budget: str, seed: int,
    device: str, progress: bool,
) -> tuple[GenerativeModel, float]:  # fmt: skip
    """A model of ``family``, reused from ``run_path`` when its settings are the same."""
    model_config, train_config = resolve_settings(family, {}, budget)
    run = RunDirectory(run_path)
    if run.model_path.exists() and run.config_path.exists():
        saved = run.read_config()
        same = (
            saved.family == family
            and saved.model == _as_json(to_dict(model_config))
            and saved.train == _as_json(to_dict(train_config))
            and saved.data.get("spec") == spec
            and saved.seed == seed
        )
        if same:
            summary = run.read_summary()
            return load(run_path, device=device), float(summary.get("elapsed_seconds", 0.0))
    started = time.perf_counter()
    model = fit(
        family, dataset, out=run_path, seed=seed, device=device, budget=budget,
        progress=progress, overwrite=True,
    )  # fmt: skip
    return model, time.perf_counter() - started


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from ``config.json`` (tuples become lists)."""
    return json.loads(json.dumps(value))


def score(
    model: GenerativeModel,
    dataset: Dataset,
    *,
    classifier: DomainClassifier | None,
    cache_dir: Path,
    seed: int,
) -> dict[str, Any]:
    """Every scorecard number the model supports (see module docstring)."""
    caps = model.capabilities
    row = evaluate(model, dataset, seed=seed)
    if caps.sample and classifier is not None:
        row.update(
            sample_quality(
                model, dataset, ["fid", "prdc"], seed=seed, n_bootstrap=0, cache_dir=cache_dir
            ).to_json()
        )
    if caps.conditional:
        row.update(completion_scores(model, dataset, classifier=classifier, seed=seed))
    return row


def compare(
    data: str,
    families: Sequence[str] | None = None,
    *,
    out: str | Path,
    budget: str = "fast",
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> Scorecard:
    """Train (or reuse) and score each family; write ``scorecard.json`` and ``report.html``."""
    families = list(families or FAMILIES)
    for family in families:
        resolve_settings(family, {}, budget)  # fail on a bad name before any training
    dataset = data_module.load(data)
    spec = data if data in data_module.DATASETS else str(Path(data).expanduser().resolve())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classifier = None
    if dataset.info.kind == "image" and dataset.y_train is not None:
        classifier = domain_network(dataset, seed=seed, cache_dir=out)
    baseline = mean_fill_scores(dataset, classifier=classifier)
    rows, sections = [], []
    for family in families:
        model, seconds = _trained(
            family, dataset, spec, out / family, budget, seed, device, progress
        )
        measured = score(model, dataset, classifier=classifier, cache_dir=out, seed=seed)
        row = {"family": family, **{key: measured.get(key) for key in SCORE_KEYS}}
        if row["log_prob_kind"] == "none":
            row["log_prob_kind"] = None  # no density: a dash, like every unsupported task
        row["train_seconds"] = seconds
        row["details"] = {k: v for k, v in measured.items() if k not in row}
        rows.append(row)
        pictures = family_pictures(model, dataset, seed)
        curves = RunDirectory(out / family).curves_path
        if curves.exists():  # a closed-form fit logs no curves
            pictures.append(
                Picture("training curves", curves.read_bytes(), wide=True, full_width=True)
            )
        sections.append(
            Section(
                family,
                capability_badges(model),
                pictures,
                notes=[f"run directory: {out / family}"],
            )
        )
    json_path = out / "scorecard.json"
    report_path = out / "report.html"
    columns = _columns_for(dataset)
    scorecard = Scorecard(data, budget, seed, rows, baseline, report_path, json_path, columns)
    write_json(json_path, scorecard.to_json())
    notes = [
        "A dash means the family cannot do the task. 'lower_bound' likelihoods are bounds "
        "(importance-weighted), not exact values. Domain FID uses a small classifier trained "
        "on this dataset and is not comparable with Inception-based FID.",
        _baseline_note(baseline),
    ]
    page = render_report(
        title=f"genlab scorecard: {dataset.info.name}",
        subtitle=f"budget {budget}, seed {seed}, {len(dataset.x_train)} training and "
        f"{len(dataset.x_test)} test examples",
        rows=rows,
        columns=columns,
        sections=sections,
        notes=notes,
    )
    write_report(report_path, page)
    return scorecard


def _baseline_note(baseline: dict[str, Any]) -> str:
    parts = [f"{key.replace('_', ' ')} {value:.4g}" for key, value in baseline.items()]
    return "Baseline for conditional sampling (unobserved half set to its training mean): " + (
        ", ".join(parts)
    )


def scorecard_table(scorecard: Scorecard) -> str:
    """The scorecard as aligned text, with the columns that apply to its data."""
    return format_table(scorecard.rows, [(c.key, c.header) for c in scorecard.columns])
