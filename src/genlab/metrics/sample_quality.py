"""The sample-quality card: ``genlab score SAMPLES --data DATA`` and ``genlab evaluate --metrics``.

One code path for both: :func:`score_samples` measures a set of samples against a dataset
(its test split is the reference; its train split trains the domain network and is the
memorisation reference), and :func:`sample_quality` draws samples from a model with the seed
and scores them. So ``genlab sample RUN -n N --seed S --out s.npy`` followed by
``genlab score s.npy --data DATA --seed S`` gives the numbers of
``genlab evaluate RUN --metrics ... --n-samples N --seed S``.

Feature space (:mod:`genlab.metrics.feature_spaces`): the domain network's penultimate layer
for labelled data, the flattened data for unlabelled data, or ``features=`` (``pixels``,
``inception_v3:WEIGHTS``, a callable). Memorisation and the birthday test work in data units.
For discrete data (``info.levels`` set, e.g. digits 0..16) the samples are first put on the
data's grid (rounded to the nearest level and clamped to the range, as images are stored);
otherwise a fresh discriminator would simply detect non-integer values.

Each metric draws its randomness from its own generator, seeded by ``(seed, metric)``, so a
metric's value does not depend on which other metrics are computed alongside it. The metric
keys each name adds:

================  ====================================================================
``fid``           ``fid`` (Frechet distance of the features), ``fid_ci_low``,
                  ``fid_ci_high`` (basic bootstrap, see :mod:`genlab.stats.bootstrap`),
                  ``fid_bootstrap_bias``
``fid_inf``       ``fid_inf`` (FID-infinity intercept), ``fid_inf_slope``
``kid``           ``kid``, ``kid_std``
``prdc``          ``precision``, ``recall``, ``density``, ``coverage``
``is``            ``is``, ``is_std`` (samples), ``is_real`` (test split); always with the
                  domain network's softmax
``confident``     ``confident``: the share of samples the domain network assigns to one
                  class with probability >= 0.9 (:func:`~genlab.metrics.domain.confident_fraction`),
                  ``confident_real``: the test split's (sharp digits score near it)
``memorization``  ``memorization_fraction``, ``memorization_p_value``,
                  ``memorization_distance_ratio``
``birthday``      ``birthday_batch_size``, ``birthday_support``, ``birthday_threshold``,
                  ``birthday_max_batch``; the near-duplicate pairs are returned as data
                  (:attr:`SampleQualityResult.birthday_pairs`) for the report to draw
``cas``           ``cas`` (a classifier trained on the samples, tested on real data),
                  ``cas_labels`` (``given`` when the samples came with labels, else
                  ``domain_network``: labelled by its predictions), ``cas_real`` (the
                  domain network's own test accuracy)
``fresh_disc``    ``fresh_disc_accuracy``, ``fresh_disc_p_value``
================  ====================================================================

The birthday test scans random orders of the scored samples (streams of at most
``max_batch = min(2048, n_samples)``), so a support estimate is capped by ``n_samples ** 2``
and its repetitions share one pool: score at least 2,048 samples for a support estimate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from genlab.data.dataset import DataInfo, Dataset
from genlab.errors import ConfigError, DataError
from genlab.metrics.birthday import birthday_support, duplicate_threshold
from genlab.metrics.classifier_scores import classification_accuracy_score, fresh_discriminator
from genlab.metrics.domain import (
    CHUNK,
    DEFAULT_CLASSIFIER,
    ClassifierConfig,
    DomainClassifier,
    confident_fraction,
    domain_network,
    domain_network_id,
    inception_score,
)
from genlab.metrics.feature_spaces import (
    FeatureSpace,
    callable_space,
    network_space,
    parse_features,
    pixel_space,
)
from genlab.metrics.features import FeatureExtractor, all_features
from genlab.metrics.frechet import (
    fid_infinity,
    frechet_feature_distance,
    kernel_inception_distance,
)
from genlab.metrics.memorization import memorization
from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.models.base import GenerativeModel
from genlab.stats.bootstrap import bootstrap_ci

logger = logging.getLogger(__name__)

SampleMetric = Literal[
    "fid", "fid_inf", "kid", "prdc", "is", "confident", "memorization", "birthday", "cas",
    "fresh_disc"
]  # fmt: skip
SAMPLE_METRICS: tuple[str, ...] = get_args(SampleMetric)
FEATURE_METRICS = ("fid", "fid_inf", "kid", "prdc")
NEEDS_LABELS = ("is", "confident", "cas")
PAIRS_KEPT = 16
MIN_SAMPLES = 10  # the Inception Score's 10 splits; k-NN metrics need more than k


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    """``"fid,kid"`` or a list -> validated metric names (``"all"`` = every metric)."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return list(SAMPLE_METRICS)
    unknown = [n for n in names if n not in SAMPLE_METRICS]
    if unknown:
        raise ConfigError(
            f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(SAMPLE_METRICS)} "
            "or all"
        )
    if not names:
        raise ConfigError("no metric named")
    return names


def default_metrics(data: Dataset) -> list[str]:
    """Every metric ``data`` allows (those of :data:`NEEDS_LABELS` only with labels)."""
    return [m for m in SAMPLE_METRICS if _labelled(data) or m not in NEEDS_LABELS]


def to_data_grid(x: Tensor, info: DataInfo) -> Tensor:
    """Round ``x`` to the nearest of the data's levels and clamp to its range (discrete data)."""
    step = info.level_step
    if step is None:
        return x
    low, high = info.value_range
    return (((x - low) / step).round() * step + low).clamp(low, high)


@dataclass(frozen=True)
class SampleQualityResult:
    """The card's numbers with what they depend on.

    Attributes:
        values: metric keys (module docstring) -> numbers.
        n_samples: samples scored.
        n_real: real test examples they were compared with.
        n_train: training examples (domain network, memorisation, duplicate threshold).
        features: the feature space's name (``None`` without feature metrics).
        feature_extractor: what exactly computed the features (network id, weights hash).
        seed: the seed of every random choice.
        notes: conversions applied to the samples and warnings.
        birthday_pairs: ``(a, b)``, each ``(P, *event_shape)``: the closest near-duplicate
            pairs (data for the report to draw), or ``None``.
    """

    values: dict[str, Any]
    n_samples: int
    n_real: int
    n_train: int
    features: str | None
    feature_extractor: str | None
    seed: int
    notes: tuple[str, ...] = ()
    birthday_pairs: tuple[Tensor, Tensor] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "n_real": self.n_real,
            "n_train": self.n_train,
            "features": self.features,
            "feature_extractor": self.feature_extractor,
            "seed": self.seed,
            **self.values,
            "notes": list(self.notes),
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]


def comparability_warnings(results: Mapping[str, SampleQualityResult]) -> list[str]:
    """Why the numbers of named ``results`` are not directly comparable (empty: they are).

    FID, KID and precision/recall move with the number of samples (FID is biased upwards at
    small sizes), with the reference set and with the feature extractor.
    """
    checks = (
        ("n_samples", "sample sizes", "FID falls as n grows: compare fid_inf, or --n-samples"),
        ("n_real", "reference sizes", "the numbers depend on the real set"),
        ("feature_extractor", "feature extractors", "features from different networks"),
        ("seed", "seeds", "random choices differ"),
    )
    warnings = []
    for attribute, what, why in checks:
        seen = {name: getattr(result, attribute) for name, result in results.items()}
        if len(set(seen.values())) > 1:
            listed = ", ".join(f"{name}: {value}" for name, value in seen.items())
            warnings.append(f"warning: different {what} ({listed}); {why}")
    return warnings


def _labelled(data: Dataset) -> bool:
    return data.y_train is not None and data.y_test is not None and bool(data.info.n_classes)


def metric_generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one metric (or ``"subsample"``), seeded by ``(seed, stream)``."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _feature_space(
    features: str | FeatureExtractor | None, data: Dataset
) -> tuple[str, FeatureSpace | None]:
    """(name, space): the space is ``None`` for ``domain``, built once its network exists."""
    if callable(features):
        space = callable_space(features)
        return space.name, space
    name, path = parse_features(features or ("domain" if _labelled(data) else "pixels"))
    if name == "domain":
        if not _labelled(data):
            raise DataError(f"{data.info.name}: domain features need a labelled dataset")
        return name, None
    if path is None:
        return name, pixel_space(data.info)
    return name, network_space(name, path, data.info)


def score_samples(
    samples: Tensor,
    data: Dataset,
    metrics: str | Sequence[str] | None = None,
    *,
    labels: Tensor | None = None,
    features: str | FeatureExtractor | None = None,
    seed: int = 0,
    n_samples: int | None = None,
    n_bootstrap: int = 100,
    k: int = 5,
    classifier: ClassifierConfig = DEFAULT_CLASSIFIER,
    cache_dir: str | Path | None = None,
    notes: Sequence[str] = (),
) -> SampleQualityResult:
    """The sample-quality ``metrics`` (module docstring) of ``samples`` against ``data``.

    Arguments:
        samples: ``(N, *data.info.event_shape)`` in data units.
        data: the dataset (test split: reference; train split: domain network, memorisation).
        metrics: names from :data:`SAMPLE_METRICS` (default: :func:`default_metrics`).
        labels: ``(N,)`` class indices of the samples (a conditional model's), used by ``cas``.
        features: ``"domain"``, ``"pixels"``, ``"inception_v3:WEIGHTS"`` or a callable
            (default: ``domain`` for labelled data, else ``pixels``).
        seed: seeds the subset, every metric's randomness and the classifiers.
        n_samples: score a random subset of this many samples (default: all).
        n_bootstrap: resamples for ``fid``'s confidence interval (0: none).
        k: neighbourhood size of precision/recall/density/coverage.
        classifier: the domain network's (and the CAS/fresh classifiers') architecture.
        cache_dir: where the domain network is cached (``None``: not cached).
        notes: carried into the result (e.g. how the samples were converted).
    """
    metrics = default_metrics(data) if metrics is None else parse_metrics(metrics)
    labelled = _labelled(data)
    missing = [m for m in metrics if m in NEEDS_LABELS]
    if missing and not labelled:
        raise DataError(f"{data.info.name}: {', '.join(missing)} need a labelled dataset")
    if tuple(samples.shape[1:]) != data.info.event_shape:
        raise DataError(
            f"samples have shape {tuple(samples.shape[1:])} but {data.info.name} examples "
            f"{data.info.event_shape}"
        )
    if labels is not None and labels.shape != (len(samples),):
        raise DataError(f"{len(samples)} samples but labels of shape {tuple(labels.shape)}")
    n = len(samples) if n_samples is None else n_samples
    if n > len(samples):
        raise ConfigError(f"n_samples={n}, but there are only {len(samples)} samples")
    if n < max(MIN_SAMPLES, k + 1):
        raise DataError(f"need at least {max(MIN_SAMPLES, k + 1)} samples, got {n}")
    uses_features = any(m in FEATURE_METRICS for m in metrics)
    name, space = _feature_space(features, data) if uses_features else (None, None)
    if n < len(samples):
        keep = torch.randperm(len(samples), generator=metric_generator(seed, "subsample"))[:n]
        samples = samples[keep.to(samples.device)]
        labels = None if labels is None else labels[keep.to(labels.device)]
    samples = to_data_grid(samples.detach().float().cpu(), data.info)
    x_test = data.x_test
    watch = _Stopwatch()
    net: DomainClassifier | None = None
    if labelled and (name == "domain" or any(m in NEEDS_LABELS for m in metrics)):
        net = domain_network(data, config=classifier, seed=seed, cache_dir=cache_dir)
        watch.lap("domain network")
        # one pass of each set through the network serves the features, IS and CAS labels
        domain_real = all_features(x_test, net.features, CHUNK)
        domain_fake = all_features(samples, net.features, CHUNK)
        p_real, p_fake = net.head_probabilities(domain_real), net.head_probabilities(domain_fake)
        watch.lap("domain network outputs")
    values: dict[str, Any] = {}
    if name == "domain" and net is not None:
        identity = domain_network_id(data, config=classifier, seed=seed)
        space = FeatureSpace("domain", f"domain network {identity}", net.features, CHUNK)
        values.update(_feature_metrics(domain_real, domain_fake, metrics, seed, n_bootstrap, k))
    elif space is not None:
        real_f = all_features(x_test, space.extractor, space.chunk_size)
        fake_f = all_features(samples, space.extractor, space.chunk_size)
        values.update(_feature_metrics(real_f, fake_f, metrics, seed, n_bootstrap, k))
    watch.lap("fid, fid_inf, kid, prdc")
    if "is" in metrics and net is not None:
        values["is"], values["is_std"] = inception_score(p_fake)
        values["is_real"], _ = inception_score(p_real)
    if "confident" in metrics and net is not None:
        values["confident"] = confident_fraction(p_fake)
        values["confident_real"] = confident_fraction(p_real)
    if "memorization" in metrics:
        result = memorization(
            samples, data.x_train, x_test, generator=metric_generator(seed, "memorization")
        )
        values.update(result.to_json())
        watch.lap("memorization")
    pairs = None
    if "birthday" in metrics:
        birthday = birthday_support(
            samples,
            duplicate_threshold(data.x_train),
            generator=metric_generator(seed, "birthday"),
        )
        values.update(birthday.to_json())
        if len(birthday.pairs_a):
            pairs = (birthday.pairs_a[:PAIRS_KEPT], birthday.pairs_b[:PAIRS_KEPT])
        watch.lap("birthday")
    if "cas" in metrics and net is not None:
        given = labels is not None
        train_labels = labels.cpu() if labels is not None else p_fake.argmax(1)
        values["cas"] = classification_accuracy_score(
            samples,
            train_labels,
            x_test,
            data.y_test,
            data.info,
            data.info.n_classes,
            classifier,
            generator=metric_generator(seed, "cas"),
        )
        values["cas_labels"] = "given" if given else "domain_network"
        values["cas_real"] = float((p_real.argmax(1) == data.y_test.cpu()).double().mean())
        watch.lap("cas")
    if "fresh_disc" in metrics:
        test = fresh_discriminator(
            samples, x_test, data.info, classifier, generator=metric_generator(seed, "fresh_disc")
        )
        values["fresh_disc_accuracy"], values["fresh_disc_p_value"] = test.statistic, test.p_value
        watch.lap("fresh_disc")
    return SampleQualityResult(
        values=values,
        n_samples=n,
        n_real=len(x_test),
        n_train=len(data.x_train),
        features=name,
        feature_extractor=None if space is None else space.identity,
        seed=seed,
        notes=tuple(notes),
        birthday_pairs=pairs,
    )


class _Stopwatch:
    """Logs the wall and CPU seconds of each stage of the card (``genlab -v`` shows them)."""

    def __init__(self) -> None:
        self.last = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        wall, cpu = now[0] - self.last[0], now[1] - self.last[1]
        logger.info("score stage %s: %.2f s wall, %.2f s CPU", stage, wall, cpu)
        self.last = now


def _feature_metrics(
    real_f: Tensor, fake_f: Tensor, metrics: Sequence[str], seed: int, n_bootstrap: int, k: int
) -> dict[str, Any]:
    """``fid``, ``fid_inf``, ``kid``, ``prdc`` of ``(N, d)`` real and generated features."""
    out: dict[str, Any] = {}
    if "fid" in metrics:
        out["fid"] = frechet_feature_distance(real_f, fake_f)
        if n_bootstrap:
            ci = bootstrap_ci(
                frechet_feature_distance,
                real_f,
                fake_f,
                n_bootstrap=n_bootstrap,
                method="basic",
                lower_bound=0.0,
                generator=metric_generator(seed, "fid"),
            )
            out["fid_ci_low"], out["fid_ci_high"] = ci.low, ci.high
            out["fid_bootstrap_bias"] = ci.bias
    if "fid_inf" in metrics:
        result = fid_infinity(real_f, fake_f, generator=metric_generator(seed, "fid_inf"))
        out["fid_inf"], out["fid_inf_slope"] = result.fid_infinity, result.slope
    if "kid" in metrics:
        kid = kernel_inception_distance(real_f, fake_f, generator=metric_generator(seed, "kid"))
        out["kid"], out["kid_std"] = kid.mean, kid.std
    if "prdc" in metrics:
        out.update(precision_recall_density_coverage(real_f, fake_f, k=k).to_json())
    return out


def sample_quality(
    model: GenerativeModel,
    data: Dataset,
    metrics: str | Sequence[str],
    *,
    seed: int = 0,
    n_samples: int | None = None,
    **options: Any,
) -> SampleQualityResult:
    """Draw ``n_samples`` (default: as many as test examples) from ``model`` with a generator
    seeded by ``seed`` on the model's device, as ``genlab sample`` does, and
    :func:`score_samples` them; ``options`` are its keywords (``features``, ``n_bootstrap``,
    ``k``, ``classifier``, ``cache_dir``)."""
    metrics = parse_metrics(metrics)
    if not model.capabilities.sample:
        raise model.unsupported("sample")
    n = n_samples or len(data.x_test)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        samples = model.sample(n, generator=generator).cpu()
    return score_samples(samples, data, metrics, seed=seed, **options)
