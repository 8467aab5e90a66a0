"""``genlab compare``: the scorecard. Every family on the same split, every task it can do.

For each family and seed, :func:`compare` trains a model with the family's documented settings
for the budget (``budgets`` on the class), its steps fitted to a share of training time where
one is given (``train_seconds``, by default :data:`TRAIN_SECONDS`: half a minute a family at
``fast`` on large images, whose own ``fast`` runs take up to an hour each; see
:mod:`genlab.train.time_share`), then measures on the test split, with the budget's sizes
for the data (:func:`sizes_key`):

- generation: domain FID, precision and recall (labelled image data: features of the domain
  network, :mod:`genlab.metrics.sample_quality`) and the share of samples that network assigns
  to one class with probability >= 0.9 ("confident"), over a floor row of real training
  examples scored as samples (:func:`real_data_scores`: FID's bias at that sample size); modes
  captured and high-quality fraction (2-D mixtures);
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

An MCMC sampler more than a quarter of whose chains never moved
(:class:`~genlab.errors.SamplerWarning`) is named in the family's ``sampler_warnings`` (``seed
S, stage: message``), in the report and on the command line: its numbers are the proposals',
not the model's.

A task a family cannot do is ``None`` in ``scorecard.json`` and a dash in the table and report.
By default every family that models the data's kind takes part (text: the sequence families).

**Seeds.** One seed is one replicate of the whole protocol (the model's initialisation, data
order and training noise, the domain network, and the evaluation's draws); the data split is
fixed. With several seeds, each number is reported as the mean and the standard deviation over
seeds (``mean ± sd`` in the table and report; ``spread`` and ``per_seed`` in the JSON).

**Layout and reuse.** One seed writes ``OUT/<family>`` run directories; several seeds write
``OUT/seed-<s>/<family>``. A run whose settings, seed and data fingerprint are the ones asked
for is reused when complete and resumed when it was stopped (so a killed ``compare`` continues
where it stopped when run again); any other genlab run there is replaced. ``OUT`` holds a
``compare.json`` marker and the lock of the one ``compare`` writing it; a folder that is not
empty and has no marker is refused untouched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genlab import data as data_module
from genlab.api import fit, load, resume
from genlab.config import to_dict
from genlab.data.dataset import DataInfo, Dataset, is_large_image
from genlab.errors import CheckpointError, ConfigError
from genlab.io import make_folder, write_json
from genlab.metrics.completion import completion_scores, mean_fill_scores
from genlab.metrics.conditioning import (
    bicubic_mse,
    class_route,
    class_scores,
    measurement_scores,
)
from genlab.metrics.domain import (
    DEFAULT_CLASSIFIER,
    ClassifierConfig,
    DomainClassifier,
    domain_network,
)
from genlab.metrics.evaluate import evaluate
from genlab.metrics.sample_quality import sample_quality, score_samples
from genlab.metrics.stages import StageTimer
from genlab.models import FAMILIES, GenerativeModel, MCMCSizes
from genlab.report.family import (
    N_PER_CLASS,
    PIXELS,
    Pixels,
    capability_badges,
    family_pictures,
    text_examples,
)
from genlab.report.html import Column, Picture, Section, render_report, write_report
from genlab.report.table import format_markdown, format_mean_spread, format_table
from genlab.runs import LOCK_FILE, RunConfig, RunDirectory, RunLock, check_seed, read_json
from genlab.samplers import Downsample, recording_sampler_warnings
from genlab.settings import ResolvedSettings, resolve_settings
from genlab.train.threads import check_threads
from genlab.train.time_share import check_train_seconds

COMPARE_FORMAT = "genlab-compare"
MARKER_FILE = "compare.json"

SCORE_KEYS = (
    "fid", "precision", "recall", "confident", "modes_captured", "hq_fraction", "nll_nats",
    "bits_per_dim", "log_prob_kind", "nll_per_token", "bits_per_char", "perplexity",
    "probe_accuracy", "knn_accuracy", "conditional_kind", "completion_accuracy",
    "completion_mse", "class_accuracy", "class_cas", "posterior_mse", "posterior_spread",
    "train_seconds", "eval_seconds",
)  # fmt: skip

COLUMNS = [
    Column("family", "family"),
    Column("fid", "domain FID", "generation"),
    Column("precision", "precision", "generation"),
    Column("recall", "recall", "generation"),
    Column("confident", "confident", "generation"),
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
    Column("eval_seconds", "eval s", "cost"),
]


GENERATION_METRICS = ["fid", "prdc", "confident"]  # of sample_quality, on labelled images
REAL_DATA = "real training data"  # the floor row: training examples scored as samples
FLOOR_KEYS = ("fid", "precision", "recall", "confident")  # the floor row's numbers
FAST_LARGE = "fast on large images"  # the tables' key for the fast budget on large images
# per budget: samples per class, examples and draws of the super-resolution posterior
CONDITIONING_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"per_class": 2, "n_examples": 4, "n_draws": 2},
    "fast": {"per_class": 10, "n_examples": 30, "n_draws": 6},
    FAST_LARGE: {"per_class": 4, "n_examples": 10, "n_draws": 4},
    "full": {"per_class": 50, "n_examples": 200, "n_draws": 10},
}
# per budget: the MCMC transitions and SIR candidates of the samplers of both and of the
# report's pictures (None: the family's default; smoke's 8 as the completions', below)
CONDITIONING_MCMC: dict[str, MCMCSizes] = {
    "smoke": MCMCSizes(steps=5, n_candidates=8),
    "fast": MCMCSizes(steps=100),
    FAST_LARGE: MCMCSizes(steps=30),
    "full": MCMCSizes(steps=300),
}
SUPER_RESOLUTION = 2  # the measurement: a copy downsampled by this factor, with noise
# per budget: the test examples scored (a seeded subsample of a larger test split; None: all),
# the most model passes a sampled likelihood bound may take over them, k x n_test (its k is
# the family's default, or less: at least 1), and the samples behind FID and precision/recall
# (None: as many as test examples scored), and the test examples whose bottom halves are
# completed (the first of the scored ones; None: all of them), and the training examples whose
# codes fit the linear probe and k-NN (a seeded subsample; None: all)
EVALUATION_SIZES: dict[str, dict[str, int | None]] = {
    "smoke": {"n_test": 500, "bound_passes": 5_000, "n_samples": 100, "n_completed": 100,
              "n_probe": 1_000},
    "fast": {"n_test": 2_000, "bound_passes": 500_000, "n_samples": 1_000, "n_completed": 500,
             "n_probe": None},
    FAST_LARGE: {"n_test": 500, "bound_passes": 50_000, "n_samples": 500, "n_completed": 100,
                 "n_probe": 1_000},
    "full": {"n_test": None, "bound_passes": None, "n_samples": None, "n_completed": None,
             "n_probe": None},
}  # fmt: skip
# per budget: the MCMC transitions and SIR candidates of an MCMC completion sampler (None: the
# family's default). Smoke's 8 candidates (32 or 64 by default) made a smoke scorecard's MCMC
# completions of 28x28 digits 2-4x faster, their accuracies within the noise of 100 examples
# (flow 0.35 -> 0.38, GAN 0.51 -> 0.51, VAE 0.48 -> 0.47)
COMPLETION_MCMC: dict[str, MCMCSizes] = {
    "smoke": MCMCSizes(steps=5, n_candidates=8),
    "fast": MCMCSizes(),
    FAST_LARGE: MCMCSizes(steps=50),
    "full": MCMCSizes(),
}
# per budget: the domain network behind domain FID, precision/recall, class accuracy and CAS.
# Smoke's is half as wide: on 10,000 real 28x28 digits it trains in under a third of the time
# (13.8 s against 46.7 s, one thread, a busy machine) to 95% test accuracy against 97%
DOMAIN_NETWORKS: dict[str, ClassifierConfig] = {
    "smoke": dataclasses.replace(DEFAULT_CLASSIFIER, channels=DEFAULT_CLASSIFIER.channels // 2),
    "fast": DEFAULT_CLASSIFIER,
    FAST_LARGE: DEFAULT_CLASSIFIER,
    "full": DEFAULT_CLASSIFIER,
}
# per budget: the wall-clock seconds of training steps each family gets by default (its steps
# fitted to them before it trains: genlab.train.time_share; None: the budget's own steps).
# The families' own `fast` runs on 28x28 digits take 1 to 50 minutes each. On real MNIST, one
# thread, `compare --budget fast` took 25 minutes at 60 s a family (scoring 11 of them,
# diffusion's 7) and 17 at 30 s; issue 18's bar for the whole command is 20 (README)
TRAIN_SECONDS: dict[str, float | None] = {
    "smoke": None,
    "fast": None,
    FAST_LARGE: 30.0,
    "full": None,
}
# per budget: the settings of each family's runs that replace its budget's where their steps
# are fitted to a time share (share_settings). At `fast` on large images, diffusion's U-Net at
# 16 channels instead of its 32: a step costs a third, so 30 s buys about three times the
# steps, and each network call of its scoring (every sample, completion, term of the bound and
# code) a third; with 32, `compare --budget fast` on real MNIST took 30 minutes, diffusion's
# evaluation 18 of them; with 16, 19 minutes (README)
SHARE_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {},
    "fast": {},
    FAST_LARGE: {"diffusion": {"channels": 16}},
    "full": {},
}


LARGE_IMAGE_KEYS = {"fast": FAST_LARGE}  # budgets with their own entries for large images


def sizes_key(budget: str, info: DataInfo) -> str:
    """The key of the tables above for ``budget`` on data ``info``: the entry for large images
    (:func:`~genlab.data.dataset.is_large_image`) where the budget has one (``fast``: the
    families' 28x28 `fast` runs and scoring would take hours), else ``budget``."""
    return LARGE_IMAGE_KEYS.get(budget, budget) if is_large_image(info) else budget


def share_settings(
    family: str, budget: str, info: DataInfo, share: float | None
) -> dict[str, Any]:
    """The settings a run of ``family`` at ``budget`` on data ``info`` takes instead of the
    budget's: its :data:`SHARE_SETTINGS` where its steps are fitted to a ``share``, else none."""
    if share is None:
        return {}
    return SHARE_SETTINGS[sizes_key(budget, info)].get(family, {})


def super_resolution(dataset: Dataset) -> tuple[Downsample, float]:
    """The scorecard's measurement and its noise (5% of the value range)."""
    low, high = dataset.info.value_range
    return Downsample(dataset.info.event_shape, SUPER_RESOLUTION), 0.05 * (high - low)


@dataclass
class Scorecard:
    """Every family's scores on one dataset, over one or more seeds.

    ``rows`` hold one dict per family: the mean over seeds of each number of
    :data:`SCORE_KEYS` (the value itself for one seed; ``None`` where the family cannot do the
    task), and with several seeds ``spread`` (key -> standard deviation over seeds) and
    ``per_seed`` (key -> the value of each seed). ``baselines`` are the numbers of the
    baselines (``mean_fill`` for completion, ``bicubic`` for super-resolution, on labelled
    images :data:`REAL_DATA` for the generation columns' floor), the mean over
    seeds, and ``baseline_spreads`` their standard deviations.
    """

    data: str
    budget: str
    seeds: list[int]
    rows: list[dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    report_path: Path
    json_path: Path
    columns: list[Column]
    baseline_spreads: dict[str, dict[str, float]] = field(default_factory=dict)
    n_test: tuple[int, int] = (0, 0)  # (test examples scored, in the test split)
    note: str | None = None  # the subsampling of the test split and the time share, stated
    setup_seconds: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None  # the time share each family's steps were fitted to

    def to_json(self) -> dict[str, Any]:
        return {
            "format": COMPARE_FORMAT,
            "data": self.data,
            "budget": self.budget,
            "seeds": self.seeds,
            "n_test_scored": self.n_test[0],
            "n_test": self.n_test[1],
            "note": self.note,
            "train_seconds": self.train_seconds,
            "setup_seconds": self.setup_seconds,
            "families": {row["family"]: row for row in self.rows},
            "baselines": self.baselines,
            "baseline_spreads": self.baseline_spreads,
        }

    def display_rows(self) -> list[dict[str, Any]]:
        """The rows as the table and report show them: ``mean ± sd`` with several seeds, and
        last, on labelled images, the real training data's floor of the generation columns
        (:func:`real_data_scores`)."""
        rows = [
            {
                key: format_mean_spread(value, row["spread"].get(key))
                if "spread" in row and isinstance(value, float)
                else value
                for key, value in row.items()
            }
            for row in self.rows
        ]
        if REAL_DATA in self.baselines:
            spreads = self.baseline_spreads.get(REAL_DATA, {})
            floor = {
                key: format_mean_spread(value, spreads.get(key))
                for key, value in self.baselines[REAL_DATA].items()
            }
            rows.append({"family": f"{REAL_DATA} (floor)", **floor})
        return rows


@dataclass
class _SeedResult:
    """One seed's pass over the families."""

    rows: list[dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    models: list[GenerativeModel]
    run_paths: list[Path]
    classifier: DomainClassifier | None
    setup_seconds: dict[str, float]  # the stages every family shares (domain network...)
    drawn: list[dict[str, Any]] = field(default_factory=list)  # per family, for its pictures


def _columns_for(dataset: Dataset) -> list[Column]:
    """Only the columns that can have a value on this kind of data."""
    image_labelled = dataset.info.kind == "image" and dataset.y_train is not None
    skip = set()
    if not image_labelled:
        skip |= {"fid", "precision", "recall", "confident", "completion_accuracy"}
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
    family: str, dataset: Dataset, run_path: Path, budget: str, seed: int, device: str,
    progress: bool, threads: int | None, share: float | None, fitted_before: bool,
) -> tuple[GenerativeModel, float]:  # fmt: skip
    """A model of ``family`` and its training seconds: the run in ``run_path`` when it has the
    same settings, seed and data (finished if it was stopped), else a new one. With a time
    ``share`` the new run's steps are fitted to it (:mod:`genlab.train.time_share`), and a run
    fitted to the same share before (``fitted_before``) is the same run whatever its steps,
    and takes the family's :func:`share_settings`."""
    settings = share_settings(family, budget, dataset.info, share)
    resolved = resolve_settings(family, settings, budget, dataset.info)
    run = RunDirectory(run_path)
    if run.config_path.exists() and (share is None or fitted_before):
        saved = run.read_config()  # not a genlab run: refused, never replaced
        fitted = _step_keys(FAMILIES[family]) if share is not None else ((), ())
        if not run_differences(saved, family, resolved, dataset, seed, fitted):
            model = (
                load(run_path, device=device)
                if run.complete
                else resume(
                    run_path, device=device, progress=progress, data=dataset, threads=threads
                )
            )
            return model, float(run.read_summary()["elapsed_seconds"])
    model = fit(
        family, dataset, out=run_path, seed=seed, device=device, budget=budget,
        progress=progress, overwrite=True, threads=threads, train_seconds=share, **settings,
    )  # fmt: skip
    return model, float(run.read_summary()["elapsed_seconds"])


def _step_keys(cls: type[GenerativeModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (model, training) settings a time share may change: the steps and what counts them."""
    return cls.step_settings, ("steps", "epochs")


def run_differences(
    saved: RunConfig, family: str, resolved: ResolvedSettings, dataset: Dataset, seed: int,
    ignored: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> list[str]:  # fmt: skip
    """How the saved run differs from the one asked for (empty: it is that run): the family,
    seed and data (its fingerprint, and no recorded change of it), and the settings but for
    the ``ignored`` (model, training) keys, each difference as ``"part.key: saved, wanted"``."""
    differences = [
        f"{part}.{key}: {saved_values.get(key)!r} in the run, {wanted.get(key)!r} wanted"
        for part, saved_values, wanted, keys in (
            ("model", saved.model, _as_json(to_dict(resolved.model)), ignored[0]),
            ("train", saved.train, _as_json(to_dict(resolved.train)), ignored[1]),
        )
        for key in dict.fromkeys([*wanted, *saved_values])
        if key not in keys
        and (key not in saved_values or key not in wanted or saved_values[key] != wanted[key])
    ]
    differences += [
        f"{part}: {found!r} in the run, {wanted!r} wanted"
        for part, found, wanted in (
            ("family", saved.family, family),
            ("seed", saved.seed, seed),
            ("data fingerprint", saved.data["fingerprint"], dataset.fingerprint()),
        )
        if found != wanted
    ]
    if saved.data.get("changes"):
        differences.append("data: the run was resumed on changed data")
    return differences


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from ``config.json`` (tuples become lists)."""
    return json.loads(json.dumps(value))


def scoring_split(dataset: Dataset, budget: str, seed: int) -> Dataset:
    """``dataset`` with a test split of at most the budget's ``n_test`` examples: a seeded
    subsample (stratified by nothing: a uniform draw without replacement), or the whole split
    when it is small enough. Training never sees the test split, so only scoring uses this."""
    n_test = EVALUATION_SIZES[sizes_key(budget, dataset.info)]["n_test"]
    total = len(dataset.x_test)
    if n_test is None or total <= n_test:
        return dataset
    generator = torch.Generator().manual_seed(seed + 15_485_863)
    index = torch.randperm(total, generator=generator)[:n_test].sort().values
    y_test = None if dataset.y_test is None else dataset.y_test[index]
    return dataclasses.replace(dataset, x_test=dataset.x_test[index], y_test=y_test)


def scoring_note(dataset: Dataset, scored: Dataset, budget: str) -> str | None:
    """The sentence that states what the budget scored on: the test examples (a subsample of
    a larger split), the samples behind FID and precision/recall, the training codes behind
    the probes and a domain network narrower than the default; ``None`` when all are whole
    splits and the network is the default."""
    key = sizes_key(budget, dataset.info)
    n_scored, n_total = len(scored.x_test), len(dataset.x_test)
    n_samples = sample_count(n_scored, key)
    n_completed = len(first_test_examples(scored, EVALUATION_SIZES[key]["n_completed"]).x_test)
    n_train, n_probe = len(dataset.x_train), EVALUATION_SIZES[key]["n_probe"]
    probes = ""
    if dataset.y_train is not None and n_probe is not None and n_probe < n_train:
        probes = f"; linear probe and k-NN fitted on a seeded {n_probe:,} of the {n_train:,} training codes"
    network = ""
    config = DOMAIN_NETWORKS[key]
    if uses_domain_network(dataset) and config != DEFAULT_CLASSIFIER:
        network = (
            f"; the domain network {config.channels} channels wide "
            f"({DEFAULT_CLASSIFIER.channels} at other budgets)"
        )
    if n_scored == n_total and n_samples == n_completed == n_scored and not (probes or network):
        return None
    examples = (
        f"a seeded random {n_scored:,} of the {n_total:,} test examples"
        if n_scored < n_total
        else f"all {n_total:,} test examples"
    )
    return (
        f"Budget {budget} scores on {examples}; FID, precision/recall and the confident "
        f"share from {n_samples:,} samples (the floor: as many training examples); "
        f"completions of {n_completed:,} of them{probes}{network} (--budget full: every "
        "example, as many samples)."
    )


def share_note(
    share: float | None, families: Sequence[str], budget: str, info: DataInfo
) -> str | None:
    """The sentence that states the time share the families' steps were fitted to, and the
    settings of those of ``families`` that take their own at ``budget`` on data ``info``
    (:func:`share_settings`)."""
    if share is None:
        return None
    changed = "".join(
        f" {family} runs with {', '.join(f'{k}={v}' for k, v in settings.items())} instead of"
        " its budget's (SHARE_SETTINGS)."
        for family in families
        if (settings := share_settings(family, budget, info, share))
    )
    return (
        f"Each family's steps were fitted to about {share:g} s of training steps, timed before "
        "it trained, its stages scaled alike (its run's config.json has them; --train-seconds "
        f"inf: the budget's own steps); 'train s' adds its validation passes.{changed}"
    )


def uses_domain_network(dataset: Dataset) -> bool:
    """Labelled images: the scorecard trains a domain network on them."""
    return dataset.info.kind == "image" and dataset.y_train is not None


def scoring_network(
    dataset: Dataset, budget: str, seed: int, cache_dir: Path
) -> DomainClassifier | None:
    """The domain network the scorecard scores ``dataset`` with at ``budget`` (its width from
    ``DOMAIN_NETWORKS``), cached in ``cache_dir``; ``None`` for data without one."""
    if not uses_domain_network(dataset):
        return None
    config = DOMAIN_NETWORKS[sizes_key(budget, dataset.info)]
    return domain_network(dataset, config=config, seed=seed, cache_dir=cache_dir)


def real_data_scores(
    dataset: Dataset, scored: Dataset, classifier: DomainClassifier, cache_dir: Path, seed: int,
    budget: str,
) -> dict[str, Any]:  # fmt: skip
    """The floor of the generation columns: as many training examples as a family's samples
    (drawn without replacement, seeded by ``seed``), scored as samples against the scored test
    split: the FID a model that drew real data would get at this sample size (FID's bias), and
    the precision, recall and confident share of real data in the domain network's eyes."""
    n = min(
        sample_count(len(scored.x_test), sizes_key(budget, dataset.info)), len(dataset.x_train)
    )
    order = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(seed))
    card = score_samples(
        dataset.x_train[order[:n]], scored, GENERATION_METRICS, seed=seed, n_bootstrap=0,
        cache_dir=cache_dir, classifier=classifier.config,
    )  # fmt: skip
    return {key: card[key] for key in FLOOR_KEYS}


def importance_samples(model: GenerativeModel, n_test: int, key: str) -> int | None:
    """The ``k`` of a sampled likelihood bound: the family's default, lowered so that
    ``k * n_test`` stays within the ``bound_passes`` of ``EVALUATION_SIZES[key]`` (at least
    1; ``key``: :func:`sizes_key`); ``None`` for a density that needs no sampling."""
    default, passes = model.default_importance_samples, EVALUATION_SIZES[key]["bound_passes"]
    if default is None or passes is None:
        return default
    return max(1, min(default, passes // max(n_test, 1)))


def first_test_examples(dataset: Dataset, n: int | None) -> Dataset:
    """``dataset`` with its first ``n`` test examples (all when ``n`` is None or more)."""
    if n is None or n >= len(dataset.x_test):
        return dataset
    y_test = None if dataset.y_test is None else dataset.y_test[:n]
    return dataclasses.replace(dataset, x_test=dataset.x_test[:n], y_test=y_test)


def sample_count(n_test: int, key: str) -> int:
    """Samples behind the sample metrics: the ``n_samples`` of ``EVALUATION_SIZES[key]``
    (``key``: :func:`sizes_key`), at most ``n_test``."""
    n_samples = EVALUATION_SIZES[key]["n_samples"]
    return n_test if n_samples is None else min(n_samples, n_test)


def score(
    model: GenerativeModel,
    dataset: Dataset,
    *,
    classifier: DomainClassifier | None,
    cache_dir: Path,
    seed: int,
    budget: str = "fast",
    timer: StageTimer | None = None,
    drawn: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every scorecard number the model supports (see module docstring), on ``dataset``'s
    test split as given (see :func:`scoring_split`); ``stage_seconds`` times each stage and
    ``sampler_warnings`` lists the stages whose MCMC chains (over a quarter of them) never moved.
    ``drawn`` receives the class samples and posterior draws scored, which the report shows
    (:func:`~genlab.report.family.conditioning_pictures`) rather than drawing them again."""
    timer = timer or StageTimer()
    sampler_warnings: list[str] = []
    caps = model.capabilities
    key = sizes_key(budget, dataset.info)
    k = importance_samples(model, len(dataset.x_test), key)
    row = evaluate(
        model, dataset, seed=seed, importance_samples=k, timer=timer,
        probe_examples=EVALUATION_SIZES[key]["n_probe"],
    )  # fmt: skip
    if caps.sample and classifier is not None:
        with timer.stage("sample metrics"):
            row.update(
                sample_quality(
                    model, dataset, GENERATION_METRICS, seed=seed, n_bootstrap=0,
                    cache_dir=cache_dir, n_samples=sample_count(len(dataset.x_test), key),
                    classifier=classifier.config,  # the network above (cached under its config)
                ).to_json()
            )  # fmt: skip
    if caps.supports("conditional") and dataset.info.kind != "text":
        with (
            timer.stage("completions"),
            recording_sampler_warnings("completions", sampler_warnings),
        ):
            completed = first_test_examples(dataset, EVALUATION_SIZES[key]["n_completed"])
            options = model.mcmc_options("conditional", COMPLETION_MCMC[key])
            row.update(
                completion_scores(model, completed, classifier=classifier, seed=seed, **options)
            )
    if classifier is not None:  # labelled images
        sizes = CONDITIONING_SIZES[key]
        if class_route(model, classifier) is not None:
            with (
                timer.stage("class samples"),
                recording_sampler_warnings("class samples", sampler_warnings),
            ):
                row.update(
                    class_scores(
                        model, dataset, classifier, per_class=sizes["per_class"], seed=seed,
                        mcmc=CONDITIONING_MCMC[key], drawn=drawn,
                    )
                )  # fmt: skip
        if caps.supports("posterior"):
            operator, noise = super_resolution(dataset)
            with (
                timer.stage("posterior"),
                recording_sampler_warnings("posterior", sampler_warnings),
            ):
                row.update(
                    measurement_scores(
                        model, dataset, operator, noise, n_examples=sizes["n_examples"],
                        n_draws=sizes["n_draws"], seed=seed, mcmc=CONDITIONING_MCMC[key],
                        drawn=drawn,
                    )
                )  # fmt: skip
    row["stage_seconds"] = dict(timer.seconds)
    row["sampler_warnings"] = sampler_warnings
    return row


def compare(
    data: str,
    families: Sequence[str] | None = None,
    *,
    out: str | Path,
    budget: str = "fast",
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    progress: bool = True,
    pixels: Pixels = "mean",
    threads: int | None = None,
    train_seconds: float | None = None,
) -> Scorecard:
    """Train (or reuse) and score each family for each seed; write ``scorecard.json`` and
    ``report.html`` (see the module docstring for seeds, layout and reuse; ``pixels``: what
    the report's sample grids show, :func:`~genlab.report.family.picture_samples`).
    ``threads``: CPU threads of each training (default: chosen per family,
    :mod:`genlab.train.threads`). ``train_seconds``: each family's steps fitted to about this
    many seconds of training steps (:mod:`genlab.train.time_share`; a shorter run is kept as
    it is); ``None``: the budget's default for the data (:data:`TRAIN_SECONDS`); ``math.inf``:
    every family's own steps.

    Raises:
        ConfigError: an unknown family or budget, or bad seeds (before any training).
        RunLocked: another ``compare`` is writing ``out``.
        CheckpointError: ``out`` holds files that are not a genlab comparison.
    """
    for family in families or ():
        resolve_settings(family, {}, budget)  # fail on a bad name before reading the data
    if pixels not in PIXELS:
        raise ConfigError(f"pixels must be one of {PIXELS}, got {pixels!r}")
    seeds = [check_seed(s) for s in seeds]
    if threads is not None:
        check_threads(threads)
    check_train_seconds(train_seconds)  # before the data is read
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct and at least one, got {seeds}")
    dataset = data_module.load(data)
    kind = dataset.info.kind
    families = list(families or (f for f, cls in FAMILIES.items() if kind in cls.data_kinds))
    for family in families:
        resolve_settings(family, {}, budget)
    share = (
        TRAIN_SECONDS[sizes_key(budget, dataset.info)] if train_seconds is None else train_seconds
    )
    share = None if share == math.inf else share
    out = Path(out)
    lock = _claim(out)
    try:
        before = read_json(out / MARKER_FILE) if (out / MARKER_FILE).exists() else {}
        fitted_before = share is not None and before.get("train_seconds") == share
        write_json(
            out / MARKER_FILE,
            {"format": COMPARE_FORMAT, "data": dataset.info.name, "budget": budget,
             "families": families, "seeds": seeds, "train_seconds": share},
        )  # fmt: skip
        results = []
        for seed in seeds:
            folder = out if len(seeds) == 1 else out / f"seed-{seed}"
            result = _compare_seed(
                dataset,
                families,
                folder,
                budget,
                seed,
                device,
                progress,
                threads,
                (share, fitted_before),
            )
            if len(seeds) > 1:  # each seed keeps its own numbers beside its runs
                write_json(
                    folder / "scorecard.json",
                    {"seed": seed, "families": {r["family"]: r for r in result.rows},
                     "baselines": result.baselines},
                )  # fmt: skip
            results.append(result)
        return _write_scorecard(dataset, families, budget, seeds, results, out, pixels, share)
    finally:
        lock.release()


def _claim(out: Path) -> RunLock:
    """Check that ``out`` may hold a comparison (new, empty, or one already) and lock it."""
    if out.exists() and out.is_dir():
        entries = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
        if entries and MARKER_FILE not in entries:
            raise CheckpointError(
                f"{out}: holds files that are not a genlab comparison (no {MARKER_FILE}: "
                f"{', '.join(entries[:5])}); choose a new or empty folder for --out (a "
                "comparison of an older genlab: delete it)"
            )
        if MARKER_FILE in entries:
            marker = read_json(out / MARKER_FILE)
            if not isinstance(marker, dict) or marker.get("format") != COMPARE_FORMAT:
                raise CheckpointError(f"{out / MARKER_FILE}: not a genlab comparison marker")
    lock = RunLock(make_folder(out))
    lock.acquire()
    return lock


def _compare_seed(
    dataset: Dataset, families: list[str], out: Path, budget: str, seed: int, device: str,
    progress: bool, threads: int | None, share: tuple[float | None, bool],
) -> _SeedResult:  # fmt: skip
    """Train or reuse, then score, every family for one seed (runs in ``out/<family>``;
    ``share``: the seconds of training steps each family gets, and whether runs were fitted
    to them before: :func:`_trained`)."""
    key = sizes_key(budget, dataset.info)
    scored = scoring_split(dataset, budget, seed)
    setup = StageTimer("compare", progress=progress)
    classifier = None
    if uses_domain_network(dataset):
        with setup.stage("domain network"):
            classifier = scoring_network(dataset, budget, seed, make_folder(out))
    text = dataset.info.kind == "text"
    with setup.stage("baselines"):
        baseline = {} if text else mean_fill_scores(scored, classifier=classifier)
        bicubic, floor = None, {}
        if classifier is not None:
            operator, noise = super_resolution(scored)
            n_examples = CONDITIONING_SIZES[key]["n_examples"]
            bicubic = bicubic_mse(scored, operator, noise, n_examples=n_examples, seed=seed)
            floor = {REAL_DATA: real_data_scores(dataset, scored, classifier, out, seed, budget)}
    setup.close()
    baselines = {"mean_fill": baseline, "bicubic": {"posterior_mse": bicubic}, **floor}
    result = _SeedResult([], baselines, [], [], classifier, dict(setup.seconds))
    for family in families:
        run_path = out / family
        started = time.perf_counter()
        model, seconds = _trained(
            family, dataset, run_path, budget, seed, device, progress, threads, *share
        )
        run_seconds = time.perf_counter() - started
        timer = StageTimer(family, progress=progress)
        drawn: dict[str, Any] = {}
        measured = score(
            model, scored, classifier=classifier, cache_dir=out, seed=seed, budget=budget,
            timer=timer, drawn=drawn,
        )  # fmt: skip
        timer.close()
        row = {"family": family, **{key: measured.get(key) for key in SCORE_KEYS}}
        for key in ("log_prob_kind", "conditional_kind"):
            if row[key] == "none":
                row[key] = None  # a task the family cannot do: a dash
        row["train_seconds"] = seconds
        row["eval_seconds"] = sum(measured["stage_seconds"].values())
        row["stage_seconds"] = {
            "training": seconds,  # the run's own clock (as recorded, for a reused run)
            # the rest of train-or-reuse: the run's pictures and files, loading a reused run
            "run files": max(0.0, run_seconds - seconds),
            **measured["stage_seconds"],
        }
        row["sampler_warnings"] = [
            f"seed {seed}, {note}" for note in measured.pop("sampler_warnings")
        ]
        row["details"] = {k: v for k, v in measured.items() if k not in row}
        result.rows.append(row)
        result.models.append(model)
        result.run_paths.append(run_path)
        result.drawn.append(drawn)
    return result


def _mean_and_spread(values: list[Any]) -> tuple[Any, float | None]:
    """The mean and sample standard deviation of numbers; a label or ``None`` as it is."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        return values[0], None
    mean = math.fsum(numbers) / len(numbers)
    return mean, statistics.stdev(numbers) if len(numbers) > 1 else None


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the same family's rows of several seeds (see :class:`Scorecard`)."""
    if len(rows) == 1:
        return rows[0]
    row: dict[str, Any] = {"family": rows[0]["family"], "spread": {}, "per_seed": {}}
    stages = dict.fromkeys(name for r in rows for name in r["stage_seconds"])
    row["sampler_warnings"] = [note for r in rows for note in r["sampler_warnings"]]
    row["stage_seconds"] = {  # the mean over seeds (0 for a seed that had no such stage)
        name: math.fsum(r["stage_seconds"].get(name, 0.0) for r in rows) / len(rows)
        for name in stages
    }
    for key in (*SCORE_KEYS, "details"):
        if key == "details":
            keys = [k for k in rows[0]["details"] if all(k in r["details"] for r in rows)]
            row["details"] = {
                k: _mean_and_spread([r["details"][k] for r in rows])[0] for k in keys
            }
            continue
        values = [r[key] for r in rows]
        row[key], spread = _mean_and_spread(values)
        if spread is not None:
            row["spread"][key], row["per_seed"][key] = spread, values
    return row


def _write_scorecard(
    dataset: Dataset, families: list[str], budget: str, seeds: list[int],
    results: list[_SeedResult], out: Path, pixels: Pixels, share: float | None,
) -> Scorecard:  # fmt: skip
    rows = [_aggregate([r.rows[i] for r in results]) for i in range(len(families))]
    baselines: dict[str, dict[str, Any]] = {}
    baseline_spreads: dict[str, dict[str, float]] = {}
    for name, values in results[0].baselines.items():
        for key in values:
            mean, spread = _mean_and_spread([r.baselines[name][key] for r in results])
            baselines.setdefault(name, {})[key] = mean
            if spread is not None:
                baseline_spreads.setdefault(name, {})[key] = spread
    columns = _columns_for(dataset)
    key = sizes_key(budget, dataset.info)
    scored = scoring_split(dataset, budget, seeds[0])
    notes = [
        scoring_note(dataset, scored, budget),
        share_note(share, families, budget, dataset.info),
    ]
    scorecard = Scorecard(
        dataset.info.name, budget, seeds, rows, baselines, out / "report.html",
        out / "scorecard.json", columns, baseline_spreads,
        n_test=(len(scored.x_test), len(dataset.x_test)),
        note=" ".join(filter(None, notes)) or None,
        setup_seconds=results[0].setup_seconds,
        train_seconds=share,
    )  # fmt: skip
    first = results[0]
    sections = []
    for row, family, model, run_path, drawn in zip(
        rows, families, first.models, first.run_paths, first.drawn, strict=True
    ):
        started = time.perf_counter()
        sizes = CONDITIONING_SIZES[key]
        with recording_sampler_warnings(f"seed {seeds[0]}, pictures", row["sampler_warnings"]):
            pictures = family_pictures(
                model, dataset, seeds[0], classifier=first.classifier, pixels=pixels,
                mcmc=CONDITIONING_MCMC[key],
                per_class=min(N_PER_CLASS, sizes["per_class"]), drawn=drawn,
            )  # fmt: skip
        row["stage_seconds"]["pictures"] = time.perf_counter() - started
        row["eval_seconds"] += row["stage_seconds"]["pictures"]
        curves = RunDirectory(run_path).curves_path
        if curves.exists():  # a closed-form fit logs no curves
            pictures.append(
                Picture("training curves", curves.read_bytes(), wide=True, full_width=True)
            )
        notes = [f"run directory: {run_path}", *(f"warning: {w}" for w in row["sampler_warnings"])]
        if model.sample_note:  # the sample metrics score the default draws, as shown
            notes.append(f"samples scored and shown: {model.sample_note}")
        if model.decisions:
            notes.append(f"decided by the data: {model.decisions_text()}")
        if len(seeds) > 1:
            notes.append(f"pictures of seed {seeds[0]}")
        texts = text_examples(model, dataset, seeds[0]) if dataset.info.kind == "text" else []
        sections.append(
            Section(family, capability_badges(model), pictures, notes=notes, texts=texts)
        )
    seed_text = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"mean ± standard deviation over seeds {', '.join(map(str, seeds))}"
    )
    notes = [
        *([scorecard.note] if scorecard.note else []),
        "Seconds per stage (training, likelihood, sample metrics, completions, class samples, "
        "posterior, pictures) are in scorecard.json (stage_seconds); 'eval s' is their sum "
        "without training.",
        "A dash means the family cannot do the task. 'lower_bound' likelihoods are bounds "
        "(importance-weighted), not exact values. Domain FID uses a small classifier trained "
        "on this dataset and is not comparable with Inception-based FID.",
        baseline_note(scorecard) or _text_note(dataset.info),
    ]
    bicubic = scorecard.baselines["bicubic"]["posterior_mse"]
    if bicubic is not None:
        bicubic_text = format_mean_spread(
            bicubic, scorecard.baseline_spreads.get("bicubic", {}).get("posterior_mse")
        )
        notes.append(
            f"Baseline for super-resolution (bicubic upsampling of the same {SUPER_RESOLUTION}x "
            f"downsampled, noisy copies): MSE {bicubic_text}. 'class acc.' is the share of samples "
            "of an asked class that the domain classifier assigns to it (by context= for "
            "conditional families, classifier guidance for the others); CAS trains a classifier "
            "on those samples alone and tests it on real digits."
        )
    page = render_report(
        title=f"genlab scorecard: {dataset.info.name}",
        subtitle=f"budget {budget}, {seed_text}, {len(dataset.x_train)} training and "
        f"{len(dataset.x_test)} test examples",
        rows=scorecard.display_rows(),
        columns=columns,
        sections=sections,
        notes=notes,
    )
    write_report(scorecard.report_path, page)
    write_json(scorecard.json_path, scorecard.to_json())
    return scorecard


def baseline_note(scorecard: Scorecard) -> str | None:
    """One sentence with the mean-fill baseline's numbers (``mean ± sd`` with several seeds);
    ``None`` on data without that baseline (text)."""
    if not scorecard.baselines.get("mean_fill"):
        return None
    spreads = scorecard.baseline_spreads.get("mean_fill", {})
    parts = [
        f"{key.replace('_', ' ')} " + format_mean_spread(value, spreads.get(key))
        for key, value in scorecard.baselines["mean_fill"].items()
    ]
    return "Baseline for conditional sampling (unobserved half set to its training mean): " + (
        ", ".join(parts)
    )


def _text_note(info: DataInfo) -> str:
    vocabulary = len(info.vocabulary)
    return (
        "Text: NLL per token is the mean over every token of the test split (each item's "
        "characters and its end token; padding never counts); bits/char = NLL / log 2, "
        f"perplexity = exp(NLL). Uniform baseline over the {vocabulary} tokens: "
        f"{math.log(vocabulary):.3f} nats/token, perplexity {vocabulary}."
    )


def scorecard_table(scorecard: Scorecard, *, markdown: bool = False) -> str:
    """The scorecard as aligned text (or a Markdown table), with the columns that apply to
    its data."""
    columns = [(c.key, c.header) for c in scorecard.columns]
    return (format_markdown if markdown else format_table)(scorecard.display_rows(), columns)
