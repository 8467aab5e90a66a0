"""``genlab compare``: the scorecard. Every family on the same split, every task it can do.

For each family, :func:`compare` trains a model with the family's documented settings for the
budget (``budgets`` on the class; a run already in ``OUT/<family>`` with identical settings is
reused), then measures on the test split:

- generation: domain FID, precision and recall (labelled image data: features of the domain
  network, :mod:`genlab.metrics.sample_quality`); modes captured and high-quality fraction
  (2-D mixtures);
- density: test NLL in nats and bits/dim, with ``log_prob_kind`` (exact or bound); on text,
  NLL per token, bits per character and perplexity (tokens weighted over the split);
- representation: linear-probe and k-NN accuracy of ``encode(x)`` (labelled data);
- conditional sampling: completion accuracy and MSE of the bottom half given the top half
  (:mod:`genlab.metrics.completion`), next to the mean-fill baseline (text: completions of
  prefixes are shown in the report, not scored);
- given f(x) = y (labelled images): samples of each class, by context or classifier guidance,
  scored by the domain classifier's accuracy and the classification accuracy score; the
  posterior given a 2x downsampled copy, its mean's error and its spread, next to bicubic
  upsampling (:mod:`genlab.metrics.conditioning`; sizes by budget, :data:`CONDITIONING_SIZES`);
- training time.

A task a family cannot do is ``None`` in ``scorecard.json`` and a dash in the table and report.
By default every family that models the data's kind takes part (text: the sequence families).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import data as data_module
from genlab.api import fit, load
from genlab.config import to_dict
from genlab.data.dataset import Dataset
from genlab.io import write_json
from genlab.metrics.completion import completion_scores, mean_fill_scores
from genlab.metrics.conditioning import (
    bicubic_mse,
    class_route,
    class_scores,
    measurement_scores,
)
from genlab.metrics.domain import DomainClassifier, domain_network
from genlab.metrics.evaluate import evaluate
from genlab.metrics.sample_quality import sample_quality
from genlab.models import FAMILIES, GenerativeModel
from genlab.report.family import capability_badges, family_pictures, text_examples
from genlab.report.html import Column, Picture, Section, render_report, write_report
from genlab.report.table import format_table
from genlab.runs import RunDirectory
from genlab.samplers import Downsample
from genlab.settings import resolve_settings

SCORE_KEYS = (
    "fid", "precision", "recall", "modes_captured", "hq_fraction", "nll_nats", "bits_per_dim",
    "log_prob_kind", "nll_per_token", "bits_per_char", "perplexity", "probe_accuracy",
    "knn_accuracy", "conditional_kind", "completion_accuracy", "completion_mse", "class_accuracy",
    "class_cas", "posterior_mse", "posterior_spread",
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
    Column("nll_per_token", "NLL/token (nats)", "density"),
    Column("bits_per_char", "bits/char", "density"),
    Column("perplexity", "perplexity", "density"),
    Column("probe_accuracy", "linear probe", "representation"),
    Column("knn_accuracy", "k-NN", "representation"),
    Column("conditional_kind", "kind", "conditional"),
    Column("completion_accuracy", "accuracy", "conditional"),
    Column("completion_mse", "MSE", "conditional"),
    Column("class_accuracy", "class acc.", "given f(x) = y"),
    Column("class_cas", "CAS", "given f(x) = y"),
    Column("posterior_mse", "SR MSE", "given f(x) = y"),
    Column("posterior_spread", "SR spread", "given f(x) = y"),
    Column("train_seconds", "train s", "cost"),
]


# per budget: samples per class, examples and draws of the super-resolution posterior, and the
# posterior sampler's MCMC transitions
CONDITIONING_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"per_class": 2, "n_examples": 4, "n_draws": 2, "steps": 5},
    "fast": {"per_class": 10, "n_examples": 30, "n_draws": 6, "steps": 100},
    "full": {"per_class": 50, "n_examples": 200, "n_draws": 10, "steps": 300},
}
SUPER_RESOLUTION = 2  # the measurement: a copy downsampled by this factor, with noise


def super_resolution(dataset: Dataset) -> tuple[Downsample, float]:
    """The scorecard's measurement and its noise (5% of the value range)."""
    low, high = dataset.info.value_range
    return Downsample(dataset.info.event_shape, SUPER_RESOLUTION), 0.05 * (high - low)


@dataclass
class Scorecard:
    data: str
    budget: str
    seed: int
    rows: list[dict[str, Any]]
    baseline: dict[str, Any]
    bicubic_mse: float | None
    report_path: Path
    json_path: Path
    columns: list[Column]

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "budget": self.budget,
            "seed": self.seed,
            "families": {row["family"]: row for row in self.rows},
            "baselines": {
                "mean_fill": self.baseline,
                "bicubic": {"posterior_mse": self.bicubic_mse},
            },
        }


def _columns_for(dataset: Dataset) -> list[Column]:
    """Only the columns that can have a value on this kind of data."""
    image_labelled = dataset.info.kind == "image" and dataset.y_train is not None
    skip = set()
    if not image_labelled:
        skip |= {"fid", "precision", "recall", "completion_accuracy"}
        skip |= {"class_accuracy", "class_cas", "posterior_mse", "posterior_spread"}
    if dataset.info.mode_centres is None:
        skip |= {"modes_captured", "hq_fraction"}
    if dataset.y_train is None:
        skip |= {"probe_accuracy", "knn_accuracy"}
    if dataset.info.kind == "text":
        skip |= {"nll_nats", "bits_per_dim", "completion_mse"}
    else:
        skip |= {"nll_per_token", "bits_per_char", "perplexity"}
    return [c for c in COLUMNS if c.key not in skip]


def _trained(
    family: str, dataset: Dataset, spec: str, run_path: Path, budget: str, seed: int,
    device: str, progress: bool,
) -> tuple[GenerativeModel, float]:  # fmt: skip
    """A model of ``family``, reused from ``run_path`` when its settings are the same."""
    resolved = resolve_settings(family, {}, budget)
    model_config, train_config = resolved.model, resolved.train
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
    budget: str = "fast",
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
    if caps.supports("conditional") and dataset.info.kind != "text":
        row.update(completion_scores(model, dataset, classifier=classifier, seed=seed))
    if classifier is not None:  # labelled images
        sizes = CONDITIONING_SIZES[budget]
        if class_route(model, classifier) is not None:
            row.update(
                class_scores(
                    model, dataset, classifier, per_class=sizes["per_class"], seed=seed,
                    steps=sizes["steps"],
                )
            )  # fmt: skip
        if caps.supports("posterior"):
            operator, noise = super_resolution(dataset)
            row.update(
                measurement_scores(
                    model, dataset, operator, noise, n_examples=sizes["n_examples"],
                    n_draws=sizes["n_draws"], seed=seed, steps=sizes["steps"],
                )
            )  # fmt: skip
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
    dataset = data_module.load(data)
    kind = dataset.info.kind
    families = list(families or (f for f, cls in FAMILIES.items() if kind in cls.data_kinds))
    for family in families:
        resolve_settings(family, {}, budget)  # fail on a bad name before any training
    spec = data if data in data_module.DATASETS else str(Path(data).expanduser().resolve())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classifier = None
    if dataset.info.kind == "image" and dataset.y_train is not None:
        classifier = domain_network(dataset, seed=seed, cache_dir=out)
    baseline = {} if kind == "text" else mean_fill_scores(dataset, classifier=classifier)
    bicubic = None
    if classifier is not None:
        operator, noise = super_resolution(dataset)
        n_examples = CONDITIONING_SIZES[budget]["n_examples"]
        bicubic = bicubic_mse(dataset, operator, noise, n_examples=n_examples, seed=seed)
    rows, sections = [], []
    for family in families:
        model, seconds = _trained(
            family, dataset, spec, out / family, budget, seed, device, progress
        )
        measured = score(
            model, dataset, classifier=classifier, cache_dir=out, seed=seed, budget=budget
        )
        row = {"family": family, **{key: measured.get(key) for key in SCORE_KEYS}}
        for key in ("log_prob_kind", "conditional_kind"):
            if row[key] == "none":
                row[key] = None  # a task the family cannot do: a dash
        row["train_seconds"] = seconds
        row["details"] = {k: v for k, v in measured.items() if k not in row}
        rows.append(row)
        pictures = family_pictures(model, dataset, seed, classifier=classifier)
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
                texts=text_examples(model, dataset, seed) if kind == "text" else [],
            )
        )
    json_path = out / "scorecard.json"
    report_path = out / "report.html"
    columns = _columns_for(dataset)
    scorecard = Scorecard(
        data, budget, seed, rows, baseline, bicubic, report_path, json_path, columns
    )
    write_json(json_path, scorecard.to_json())
    notes = [
        "A dash means the family cannot do the task. 'lower_bound' likelihoods are bounds "
        "(importance-weighted), not exact values. Domain FID uses a small classifier trained "
        "on this dataset and is not comparable with Inception-based FID.",
        _baseline_note(baseline) if baseline else _text_note(dataset),
    ]
    if bicubic is not None:
        notes.append(
            f"Baseline for super-resolution (bicubic upsampling of the same {SUPER_RESOLUTION}x "
            f"downsampled, noisy copies): MSE {bicubic:.4g}. 'class acc.' is the share of samples "
            "of an asked class that the domain classifier assigns to it (by context= for "
            "conditional families, classifier guidance for the others); CAS trains a classifier "
            "on those samples alone and tests it on real digits."
        )
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


def _text_note(dataset: Dataset) -> str:
    vocabulary = len(dataset.info.vocabulary)
    return (
        "Text: NLL per token is the mean over every token of the test split (each item's "
        "characters and its end token; padding never counts); bits/char = NLL / log 2, "
        f"perplexity = exp(NLL). Uniform baseline over the {vocabulary} tokens: "
        f"{math.log(vocabulary):.3f} nats/token, perplexity {vocabulary}."
    )


def scorecard_table(scorecard: Scorecard) -> str:
    """The scorecard as aligned text, with the columns that apply to its data."""
    return format_table(scorecard.rows, [(c.key, c.header) for c in scorecard.columns])
