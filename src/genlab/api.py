"""The Python API in a few calls: ``fit``, ``resume``, ``load``, ``evaluate``, ``score``.

Example:
    >>> import genlab, torch
    >>> model = genlab.fit("pca", "digits", latent_dim=8)
    >>> x = model.sample(16, generator=torch.Generator().manual_seed(0))
    >>> genlab.evaluate(model, genlab.data.load("digits"))["bits_per_dim"] < 3.0
    True
    >>> genlab.score(model.sample(450), "digits", metrics="fid,prdc").n_samples
    450
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import data as data_module
from genlab.config import build, to_dict
from genlab.data.dataset import DataInfo, Dataset
from genlab.data.samples import SampleSet, SampleSource, read_sample_set
from genlab.errors import ConfigError
from genlab.metrics.conditioning import sample_classes
from genlab.metrics.domain import domain_network
from genlab.metrics.evaluate import evaluate
from genlab.metrics.feature_spaces import parse_features
from genlab.metrics.features import FeatureExtractor
from genlab.metrics.sample_quality import SampleQualityResult, parse_metrics, score_samples
from genlab.models import GenerativeModel, family_class
from genlab.report.curves import save_training_curves
from genlab.report.images import save_samples
from genlab.runs import RunConfig, RunDirectory, read_metrics, versions
from genlab.samplers import Operator, gaussian_measurement, parse_operator
from genlab.settings import BUDGETS, resolve_settings
from genlab.train import TrainConfig, distributed
from genlab.train import fit as train_fit
from genlab.train.checkpoint import load_model
from genlab.train.loop import Callback

logger = logging.getLogger(__name__)

__all__ = [
    "BUDGETS",
    "build_model",
    "complete",
    "evaluate",
    "fit",
    "load",
    "resolve_device",
    "resolve_settings",
    "resume",
    "sample_class",
    "score",
]

N_PICTURE_SAMPLES = 64


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU.

    Under ``torchrun`` this also joins the process group, and ``cuda`` means this process's GPU
    (``LOCAL_RANK``).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available on this machine (use auto or cpu)"
        )
    ctx = distributed.init_from_env(use_cuda=kind == "cuda")
    if device == "cuda":
        return torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
    return torch.device(device)


def build_model(family: str, model_config: Any, info: DataInfo, seed: int = 0) -> GenerativeModel:
    """A fresh model whose initial weights depend only on ``seed``."""
    cls = family_class(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(model_config, info)


def _dataset(data: str | Dataset, data_seed: int) -> tuple[Dataset, dict[str, Any]]:
    if isinstance(data, Dataset):
        return data, {"spec": data.info.name, "seed": data_seed, "info": data.info.to_json()}
    dataset = data_module.load(data, seed=data_seed)
    spec = data if data in data_module.DATASETS else str(Path(data).expanduser().resolve())
    return dataset, {"spec": spec, "seed": data_seed, "info": dataset.info.to_json()}


def fit(
    family: str,
    data: str | Dataset = "digits",
    *,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    budget: str | None = None,
    data_seed: int = 0,
    progress: bool = False,
    overwrite: bool = False,
    callback: Callback | None = None,
    **settings: Any,
) -> GenerativeModel:
    """Train a model of ``family`` on ``data`` and return it (in eval mode).

    Arguments:
        family: a registered family (``genlab.models.FAMILIES``).
        data: a dataset spec (see :func:`genlab.data.load`) or a loaded :class:`Dataset`.
        out: run directory for config, metrics, checkpoints and pictures; ``None`` keeps
            everything in memory.
        seed: seeds initial weights, validation split, data order and training noise.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        budget: ``"smoke"``, ``"fast"`` or ``"full"``: the family's documented settings.
        data_seed: seeds the dataset's draws and train/test split.
        callback: ``callback(step, model)`` at every evaluation point (see ``train.fit``).
        **settings: model or training options, as ``--set`` gives them (``latent_dim=8``...).
    """
    dataset, data_entry = _dataset(data, data_seed)
    resolved = resolve_settings(family, settings, budget)
    model_config, train_config = resolved.model, resolved.train
    model = build_model(family, model_config, dataset.info, seed).to(resolve_device(device))
    run = None
    if out is not None:
        config = RunConfig(
            family=family,
            model=to_dict(model_config),
            train=to_dict(train_config),
            data=data_entry,
            seed=seed,
            versions=versions(),
        )
        if distributed.current().is_main:
            run = RunDirectory.create(out, config, overwrite=overwrite)
        distributed.barrier()
        run = run or RunDirectory(out)
    train_fit(
        model, dataset, train_config, seed=seed, run=run, progress=progress, callback=callback
    )
    if run is not None:
        _save_pictures(model, dataset, run, seed)
    return model.eval()


def resume(
    run: str | Path, *, device: str = "auto", progress: bool = False, data: Dataset | None = None
) -> GenerativeModel:
    """Continue ``run`` from its last checkpoint; ends as an uninterrupted run would have."""
    directory = RunDirectory(run)
    config = directory.read_config()
    dataset = (
        data
        if data is not None
        else data_module.load(config.data["spec"], seed=config.data["seed"])
    )
    model = _model_from_config(config).to(resolve_device(device))
    train_config = build(TrainConfig, config.train, what="training config")
    if not directory.checkpoint_path.exists() and not directory.model_path.exists():
        raise ConfigError(
            f"{directory.path}: no checkpoint to resume from yet; train again instead"
        )
    if directory.checkpoint_path.exists():
        train_fit(
            model,
            dataset,
            train_config,
            seed=config.seed,
            run=directory,
            resume=True,
            progress=progress,
        )
    else:
        load_model(directory.model_path, model)
    _save_pictures(model, dataset, directory, config.seed)
    return model.eval()


def _model_from_config(config: RunConfig) -> GenerativeModel:
    cls = family_class(config.family)
    model_config = build(cls.config_class, config.model, what=f"{config.family} model config")
    return build_model(
        config.family, model_config, DataInfo.from_json(config.data["info"]), config.seed
    )


def load(run: str | Path, *, device: str = "cpu") -> GenerativeModel:
    """The trained model of a run directory (its final weights; the last checkpoint if unfinished)."""
    directory = RunDirectory(run)
    model = _model_from_config(directory.read_config())
    source = directory.model_path if directory.model_path.exists() else directory.checkpoint_path
    if source == directory.checkpoint_path:
        logger.warning("%s has not finished; loading its last checkpoint", directory.path)
    load_model(source, model)
    return model.to(resolve_device(device)).eval()


def score(
    samples: SampleSource | SampleSet,
    data: str | Dataset,
    *,
    metrics: str | Sequence[str] | None = None,
    features: str | FeatureExtractor | None = None,
    seed: int = 0,
    n_samples: int | None = None,
    labels: np.ndarray | torch.Tensor | None = None,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> SampleQualityResult:
    """The sample-quality card of any model's samples against a dataset (``genlab score``).

    Arguments:
        samples: a path (``.npy``, ``.npz``, an image folder), an array or tensor of
            ``(N, ...)`` samples, or a :class:`~genlab.data.samples.SampleSet`; converted to
            the data's layout, units and size by :func:`~genlab.data.samples.read_sample_set`
            (its rules: 8-bit images are mapped onto the data's range, other sizes are resized
            by one antialiased method, channel mismatches are refused).
        data: a dataset spec or a loaded :class:`Dataset`.
        metrics: names or ``"all"`` (default: every metric the data allows).
        features: ``"domain"``, ``"pixels"``, ``"inception_v3:WEIGHTS"`` or a callable.
        seed: seeds the subset, the metrics and the classifiers.
        n_samples: score a seeded random subset of this many samples.
        labels: ``(N,)`` class indices of the samples, for ``cas`` (instead of labels the
            file carries).
        cache_dir: where the domain network is cached (``None``: trained every call).
        **options: more keywords of :func:`genlab.metrics.sample_quality.score_samples`
            (``n_bootstrap``, ``k``, ``classifier``).

    Returns:
        a :class:`~genlab.metrics.sample_quality.SampleQualityResult` (``result["fid"]``,
        ``result.to_json()``, ``result.birthday_pairs``...).
    """
    if metrics is not None:
        parse_metrics(metrics)  # a bad name fails before any data is read
    if isinstance(features, str):
        parse_features(features)
    dataset = data if isinstance(data, Dataset) else data_module.load(data)
    if not isinstance(samples, SampleSet):
        samples = read_sample_set(samples, dataset.info, labels=labels)
    elif labels is not None:
        raise ConfigError("a SampleSet carries its labels: read_sample_set(..., labels=...)")
    return score_samples(
        samples.x,
        dataset,
        metrics,
        labels=samples.y,
        features=features,
        seed=seed,
        n_samples=n_samples,
        cache_dir=cache_dir,
        notes=samples.notes,
        **options,
    )


def run_dataset(run: str | Path) -> Dataset:
    """The dataset a run was trained on (re-loaded from its spec and seed)."""
    config = RunDirectory(run).read_config()
    return data_module.load(config.data["spec"], seed=config.data["seed"])


@torch.no_grad()
def _save_pictures(model: GenerativeModel, dataset: Dataset, run: RunDirectory, seed: int) -> None:
    if not distributed.current().is_main:
        return
    save_training_curves(read_metrics(run.path), run.curves_path, title=model.family)
    if not model.capabilities.sample:
        return
    generator = torch.Generator(device=model.device).manual_seed(seed)
    n = 2000 if dataset.info.kind == "vector" else N_PICTURE_SAMPLES
    context = {}
    if model.capabilities.context and dataset.y_test is not None:  # the test split's labels
        labels = dataset.y_test.repeat(-(-n // len(dataset.y_test)))[:n]
        context["context"] = labels.to(model.device)
    samples = model.eval().sample(n, generator=generator, **context).cpu()
    save_samples(samples, run.samples_path, dataset.info, reference=dataset.x_test)


def sample_class(
    model: GenerativeModel,
    label: int | torch.Tensor,
    n: int = 16,
    *,
    data: Dataset | None = None,
    weight: float = 1.0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    steps: int = 300,
) -> torch.Tensor:
    """``(n, *event_shape)`` draws of class ``label`` (or of each label of a tensor of ``n``).

    A model of :math:`p(x \\mid y)` (``capabilities.context``) samples given the label; any
    other model that samples posteriors is guided by the domain classifier of ``data``
    (:func:`genlab.metrics.domain.domain_network`, cached in ``cache_dir``), with weight
    ``weight`` (:mod:`genlab.metrics.conditioning`).
    """
    classes = torch.as_tensor(label).long()
    classes = classes.expand(n).clone() if classes.dim() == 0 else classes
    classifier = None
    if not model.capabilities.context:
        if data is None:
            raise ConfigError(
                f"{model.family} models p(x) alone: drawing a class needs the labelled dataset "
                "(data=) to train the classifier that guides it"
            )
        classifier = domain_network(data, seed=seed, cache_dir=cache_dir)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return sample_classes(
        model, classes, classifier=classifier, weight=weight, generator=generator, steps=steps
    )


def complete(
    model: GenerativeModel,
    x: torch.Tensor,
    operator: str | Operator,
    n: int = 8,
    *,
    noise_std: float | None = None,
    seed: int = 0,
    steps: int = 300,
) -> torch.Tensor:
    """``(n, batch, *event_shape)`` draws of :math:`x \\mid f(x) = y`, ``y = operator(x)``.

    The model's posterior under :math:`y = f(x) + \\sigma\\varepsilon` (``sample_posterior``),
    with ``operator`` an :class:`~genlab.samplers.Operator` or a spec such as
    ``"downsample:2"`` (:func:`~genlab.samplers.parse_operator`). ``noise_std`` defaults to 5%
    of the data's value range.
    """
    op = (
        parse_operator(operator, model.info.event_shape) if isinstance(operator, str) else operator
    )
    if noise_std is None:
        low, high = model.info.value_range
        noise_std = 0.05 * (high - low)
    observation = gaussian_measurement(op, op(x.to(model.device)), noise_std)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return model.sample_posterior(observation, n, generator=generator, steps=steps)
