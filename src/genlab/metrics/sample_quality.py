"""Sample-quality metrics of a trained model against the test split (``genlab evaluate --metrics``).

Feature space: for labelled data, the penultimate layer of the domain feature network
(:mod:`genlab.metrics.domain`, trained on the training split and cached in ``cache_dir``);
for unlabelled data, the flattened data itself. Memorisation and the birthday test work in
data units. For discrete data (``info.levels`` set, e.g. digits 0..16) the samples are first
put on the data's grid (rounded to the nearest level and clamped to the range, as images are
stored); otherwise a fresh discriminator would simply detect non-integer values. Every metric key that a name adds:

============  ====================================================================
``fid``       ``fid`` (domain Frechet distance), ``fid_ci_low``, ``fid_ci_high`` (basic
              bootstrap, see :mod:`genlab.stats.bootstrap`), ``fid_bootstrap_bias``
``fid_inf``   ``fid_inf`` (FID-infinity intercept), ``fid_inf_slope``
``kid``       ``kid``, ``kid_std``
``prdc``      ``precision``, ``recall``, ``density``, ``coverage``
``is``        ``is``, ``is_std`` (samples), ``is_real`` (test split)
``memorization``  ``memorization_fraction``, ``memorization_p_value``,
              ``memorization_distance_ratio``
``birthday``  ``birthday_batch_size``, ``birthday_support``, ``birthday_threshold``,
              ``birthday_max_batch`` (+ ``birthday_pairs.png`` in ``picture_dir``)
``cas``       ``cas`` (trained on samples labelled by the domain network),
              ``cas_real`` (the domain network's own test accuracy)
``fresh_disc``  ``fresh_disc_accuracy``, ``fresh_disc_p_value``
============  ====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from genlab.data.dataset import DataInfo, Dataset
from genlab.errors import ConfigError, DataError
from genlab.metrics.birthday import birthday_support, duplicate_threshold
from genlab.metrics.classifier_scores import classification_accuracy_score, fresh_discriminator
from genlab.metrics.domain import (
    DEFAULT_CLASSIFIER,
    ClassifierConfig,
    DomainClassifier,
    accuracy,
    domain_network,
    inception_score,
)
from genlab.metrics.features import all_features
from genlab.metrics.frechet import (
    fid_infinity,
    frechet_feature_distance,
    kernel_inception_distance,
)
from genlab.metrics.memorization import memorization
from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.models.base import GenerativeModel
from genlab.stats.bootstrap import bootstrap_ci

SampleMetric = Literal[
    "fid", "fid_inf", "kid", "prdc", "is", "memorization", "birthday", "cas", "fresh_disc"
]
SAMPLE_METRICS: tuple[str, ...] = get_args(SampleMetric)
FEATURE_METRICS = ("fid", "fid_inf", "kid", "prdc")
NEEDS_LABELS = ("is", "cas")
BIRTHDAY_PICTURE = "birthday_pairs.png"


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
    return names


def to_data_grid(x: Tensor, info: DataInfo) -> Tensor:
    """Round ``x`` to the nearest of the data's levels and clamp to its range (discrete data)."""
    step = info.level_step
    if step is None:
        return x
    low, high = info.value_range
    return (((x - low) / step).round() * step + low).clamp(low, high)


@torch.no_grad()
def _sample(model: GenerativeModel, n: int, generator: torch.Generator) -> Tensor:
    return to_data_grid(model.sample(n, generator=generator).cpu(), model.info)


def sample_quality(
    model: GenerativeModel,
    data: Dataset,
    metrics: Sequence[str],
    *,
    seed: int = 0,
    n_samples: int | None = None,
    n_bootstrap: int = 100,
    k: int = 5,
    classifier: ClassifierConfig = DEFAULT_CLASSIFIER,
    cache_dir: str | Path | None = None,
    picture_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Compute the named sample-quality ``metrics`` (module docstring) for ``model``.

    Arguments:
        model: a trained model that can sample.
        data: its dataset (the test split is the reference; the train split trains the
            domain network and is the memorisation reference).
        metrics: names from :data:`SAMPLE_METRICS`.
        seed: seeds sampling, the bootstrap, the subsets and every classifier.
        n_samples: generated samples (default: as many as test examples).
        n_bootstrap: resamples for ``fid``'s confidence interval (0: none).
        k: neighbourhood size of precision/recall/density/coverage.
        classifier: the domain network's architecture and training.
        cache_dir: where the domain network is cached (``None``: not cached).
        picture_dir: where ``birthday_pairs.png`` goes (``None``: no picture).
    """
    metrics = parse_metrics(metrics)
    if not model.capabilities.sample:
        raise model.unsupported("sample")
    labelled = data.y_train is not None and data.y_test is not None and data.info.n_classes
    missing = [m for m in metrics if m in NEEDS_LABELS]
    if missing and not labelled:
        raise DataError(f"{data.info.name}: {', '.join(missing)} need a labelled dataset")
    n = n_samples or len(data.x_test)
    sample_generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = _sample(model, n, sample_generator)
    generator = torch.Generator().manual_seed(seed)
    x_test = data.x_test
    out: dict[str, Any] = {"n_samples": n}
    net: DomainClassifier | None = None
    if labelled and any(m in FEATURE_METRICS + NEEDS_LABELS for m in metrics):
        net = domain_network(data, config=classifier, seed=seed, cache_dir=cache_dir)
    if any(m in FEATURE_METRICS for m in metrics):
        extractor = None if net is None else net.features
        out["feature_space"] = "domain_network" if net is not None else "data"
        real_f, fake_f = all_features(x_test, extractor), all_features(samples, extractor)
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
                    generator=generator,
                )
                out["fid_ci_low"], out["fid_ci_high"] = ci.low, ci.high
                out["fid_bootstrap_bias"] = ci.bias
        if "fid_inf" in metrics:
            result = fid_infinity(real_f, fake_f, generator=generator)
            out["fid_inf"], out["fid_inf_slope"] = result.fid_infinity, result.slope
        if "kid" in metrics:
            kid = kernel_inception_distance(real_f, fake_f, generator=generator)
            out["kid"], out["kid_std"] = kid.mean, kid.std
        if "prdc" in metrics:
            out.update(precision_recall_density_coverage(real_f, fake_f, k=k).to_json())
    if "is" in metrics and net is not None:
        out["is"], out["is_std"] = inception_score(net.probabilities(samples))
        out["is_real"], _ = inception_score(net.probabilities(x_test))
    if "memorization" in metrics:
        out.update(memorization(samples, data.x_train, x_test, generator=generator).to_json())
    if "birthday" in metrics:
        out.update(_birthday(model, data, picture_dir, seed))
    if "cas" in metrics and net is not None:
        labels = net.predict(samples)
        out["cas"] = classification_accuracy_score(
            samples,
            labels,
            x_test,
            data.y_test,
            data.info,
            data.info.n_classes,
            classifier,
            generator=generator,
        )
        out["cas_real"] = accuracy(net, x_test, data.y_test)
    if "fresh_disc" in metrics:
        result = fresh_discriminator(samples, x_test, data.info, classifier, generator=generator)
        out["fresh_disc_accuracy"], out["fresh_disc_p_value"] = result.statistic, result.p_value
    return out


def _birthday(
    model: GenerativeModel, data: Dataset, picture_dir: str | Path | None, seed: int
) -> dict[str, Any]:
    from genlab.report.pairs import save_pairs

    threshold = duplicate_threshold(data.x_train)
    generator = torch.Generator(device=model.device).manual_seed(seed + 1)
    result = birthday_support(
        lambda size, g: _sample(model, size, g), threshold, generator=generator
    )
    out: dict[str, Any] = result.to_json()
    if picture_dir is not None and len(result.pairs_a):
        path = Path(picture_dir) / BIRTHDAY_PICTURE
        save_pairs(
            result.pairs_a[:16], result.pairs_b[:16], path, data.info, title="near-duplicate pairs"
        )
        out["birthday_pairs"] = str(path)
    return out
