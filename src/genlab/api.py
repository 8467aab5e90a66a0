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

import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import data as data_module
from genlab.config import build, to_dict
from genlab.data.dataset import DataInfo, Dataset
from genlab.data.samples import SampleSet, SampleSource, read_sample_set
from genlab.errors import CheckpointError, ConfigError, DataError
from genlab.metrics.conditioning import check_class_options, sample_classes
from genlab.metrics.domain import domain_network
from genlab.metrics.evaluate import evaluate
from genlab.metrics.feature_spaces import parse_features
from genlab.metrics.features import FeatureExtractor
from genlab.metrics.sample_quality import SampleQualityResult, parse_metrics, score_samples
from genlab.models import GenerativeModel, MCMCSizes, family_class
from genlab.report.curves import save_training_curves
from genlab.report.family import PIXELS, Pixels, picture_samples
from genlab.report.images import save_samples
from genlab.runs import RunConfig, RunDirectory, check_seed, read_metrics, versions
from genlab.samplers import Operator, gaussian_measurement, parse_operator
from genlab.settings import BUDGETS, resolve_settings
from genlab.train import TrainConfig, distributed
from genlab.train import fit as train_fit
from genlab.train.checkpoint import load_model
from genlab.train.loop import Callback
from genlab.train.threads import check_threads, choose_threads, using_threads
from genlab.train.time_share import check_train_seconds, fitted_settings

logger = logging.getLogger(__name__)

__all__ = [
    "BUDGETS",
    "MAX_PARAMETERS",
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


MAX_PARAMETERS = 2**28  # 1 GiB of float32 weights (4 GiB with gradients and Adam's moments)
# Settings whose every size (and the data's number of coordinates) is at most this cannot make an
# absurd model; only others are counted, since the count costs PyTorch seconds the first time.
SMALL_SIZE = 4096


def parameter_count(family: str, model_config: Any, info: DataInfo) -> int:
    """Parameters and buffers a model of these settings holds, counted without allocating them
    (the model is built on PyTorch's ``meta`` device)."""
    cls = family_class(family)
    with torch.device("meta"):
        model = cls(model_config, info)
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def _largest_size(model_config: Any, info: DataInfo) -> int:
    """The largest integer among the settings (tuples included) and the data's coordinates."""
    sizes = [info.n_features]
    for value in dataclasses.asdict(model_config).values():
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, int) and not isinstance(item, bool):
                sizes.append(abs(item))
    return max(sizes)


def build_model(family: str, model_config: Any, info: DataInfo, seed: int = 0) -> GenerativeModel:
    """A fresh model whose initial weights depend only on ``seed``.

    Raises:
        ConfigError: the settings make a model of more than :data:`MAX_PARAMETERS` numbers
            (counted before anything is allocated, when a size exceeds :data:`SMALL_SIZE`).
    """
    if _largest_size(model_config, info) > SMALL_SIZE:
        count = parameter_count(family, model_config, info)
        if count > MAX_PARAMETERS:
            raise ConfigError(
                f"{family}: these settings make a model of {count:,} parameters, more than "
                f"genlab's limit of {MAX_PARAMETERS:,} (genlab.api.MAX_PARAMETERS); choose "
                "smaller sizes (hidden, channels, latent_dim...)"
            )
    cls = family_class(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(model_config, info)


def _data_entry(dataset: Dataset, data_seed: int) -> dict[str, Any]:
    """The ``data`` entry of a run's config (spec, seed, info, fingerprint); a path spec is
    recorded absolute, so that the run can be read from any directory. (The fingerprint hashes
    every tensor: a run in memory skips it.)"""
    return {
        "spec": dataset.info.name,
        "seed": data_seed,
        "info": dataset.info.to_json(),
        "fingerprint": dataset.fingerprint(),
    }


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
    pixels: Pixels = "mean",
    threads: int | None = None,
    train_seconds: float | None = None,
    **settings: Any,
) -> GenerativeModel:
    """Train a model of ``family`` on ``data`` and return it (in eval mode).

    Arguments:
        family: a registered family (``genlab.models.FAMILIES``).
        data: a dataset spec (see :func:`genlab.data.load`) or a loaded :class:`Dataset`.
        out: run directory for config, metrics, checkpoints and pictures; ``None`` keeps
            everything in memory. It must be new, an empty folder, or (with ``overwrite``) a
            genlab run; this process holds its lock while it writes (see :mod:`genlab.runs`).
        seed: seeds initial weights, validation split, data order and training noise.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        budget: ``"smoke"``, ``"fast"`` or ``"full"``: the family's documented settings.
        data_seed: seeds the dataset's draws and train/test split.
        overwrite: replace the genlab run in ``out`` (only its own files are removed).
        callback: ``callback(step, model)`` at every evaluation point (see ``train.fit``).
        pixels: what the run's ``samples.png`` shows for families with per-pixel noise:
            decoder means (``"mean"``) or draws (``"sample"``); see
            :func:`genlab.report.family.picture_samples`.
        threads: CPU threads for training; ``None``: ``OMP_NUM_THREADS`` if set, else the
            count :func:`genlab.train.threads.choose_threads` picks for the step's size
            (recorded in the run's ``config.json``; torch's count is restored after).
        train_seconds: fit the run's steps to about this many seconds of training steps, from
            a step timed on a copy before training (:mod:`genlab.train.time_share`; the fitted
            ``steps`` and stages are recorded as settings); ``None`` or ``inf``: its own steps.
        **settings: model or training options, as ``--set`` gives them (``latent_dim=8``...).
    """
    check_seed(seed)
    check_seed(data_seed, "data_seed")
    if pixels not in PIXELS:
        raise ConfigError(f"pixels must be one of {PIXELS}, got {pixels!r}")
    if threads is not None:
        check_threads(threads)
    check_train_seconds(train_seconds)
    resolve_settings(family, settings, budget)  # bad settings fail before the data is read
    torch_device = resolve_device(device)  # under torchrun, joins the process group
    if train_seconds is not None and distributed.current().enabled:
        raise ConfigError(
            "train_seconds times one process's step, and the processes of a torchrun would "
            "each fit their own steps: give --steps instead"
        )
    main = distributed.current().is_main
    if out is not None and main:
        RunDirectory(out).check_free(overwrite)  # before the data is read or a model built
    dataset = data if isinstance(data, Dataset) else data_module.load(data, seed=data_seed)
    resolved = resolve_settings(family, settings, budget, dataset.info)  # sized to the images
    model_config, train_config = resolved.model, resolved.train
    model = build_model(family, model_config, dataset.info, seed).to(torch_device)
    choice = choose_threads(model, dataset, train_config, threads, seed=seed)
    logger.info("%s: %s", family, choice.reason)
    if train_seconds is not None:
        with using_threads(choice.count):
            fitted = fitted_settings(model, dataset, train_config, train_seconds, seed)
        logger.info(
            "%s: %s for %g s of training steps", family, fitted or "own steps", train_seconds
        )
        if fitted:  # the fitted steps and stages, on top of the user's settings
            kept = {k: v for k, v in settings.items() if k != "epochs"}  # the steps replace it
            resolved = resolve_settings(family, {**kept, **fitted}, budget, dataset.info)
            model_config, train_config = resolved.model, resolved.train
            model = build_model(family, model_config, dataset.info, seed).to(torch_device)
    if out is None:
        with using_threads(choice.count):
            train_fit(
                model, dataset, train_config, seed=seed, progress=progress, callback=callback
            )
        return model.eval()
    config = RunConfig(
        family=family,
        model=to_dict(model_config),
        train=to_dict(train_config),
        data=_data_entry(dataset, data_seed),
        seed=seed,
        versions=versions(),
        threads=choice.to_json(),
        decided=model.decisions,
    )
    run = RunDirectory.create(out, config, overwrite=overwrite) if main else None
    distributed.barrier()
    run = run or RunDirectory(out)
    try:
        with using_threads(choice.count):
            train_fit(
                model, dataset, train_config, seed=seed, run=run, progress=progress,
                callback=callback,
            )  # fmt: skip
        _save_pictures(model, dataset, run, seed, pixels)
    finally:
        run.lock.release()
    return model.eval()


def resume(
    run: str | Path,
    *,
    device: str = "auto",
    progress: bool = False,
    data: Dataset | None = None,
    allow_data_change: bool = False,
    threads: int | None = None,
) -> GenerativeModel:
    """Finish ``run``: from its last checkpoint, or from the start if it has none yet.

    Ends as an uninterrupted run would have (same weights, bit for bit). The run's data must
    have the fingerprint it was trained on; ``allow_data_change`` goes on with the data as it
    is now and records the change in ``config.json``. A complete run is left as it is (its
    pictures are drawn again). ``threads`` as in :func:`fit`; by default the run's recorded
    count (unless ``OMP_NUM_THREADS`` is set).

    Raises:
        RunLocked: another process is writing the run.
        DataError: the data changed (without ``allow_data_change``) or is gone.
    """
    if threads is not None:
        check_threads(threads)
    directory = RunDirectory(run)
    config = directory.read_config()
    torch_device = resolve_device(device)  # under torchrun, joins the process group
    main = distributed.current().is_main  # rank 0 alone locks and writes the run
    with directory.lock if main else contextlib.nullcontext():
        dataset = data if data is not None else _load_run_data(directory, config)
        _check_fingerprint(
            directory, config, dataset, allow_change=allow_data_change,
            way_out=f"`genlab resume {directory.path} --allow-data-change` goes on with the "
            "data as it is now and records the change; or restore the data",
        )  # fmt: skip
        model = _model_from_config(directory, config).to(torch_device)
        train_config = _config_section(directory, TrainConfig, config.train, "train")
        recorded = config.threads["count"] if config.threads else None
        choice = choose_threads(
            model, dataset, train_config, threads, seed=config.seed, recorded=recorded
        )
        with using_threads(choice.count):
            if directory.checkpoint_path.exists():
                train_fit(
                    model, dataset, train_config, seed=config.seed, run=directory, resume=True,
                    progress=progress,
                )  # fmt: skip
            elif directory.complete:  # a closed-form fit: nothing to continue
                load_model(directory.model_path, model)
            else:  # stopped before its first checkpoint: start again (same seed, same numbers)
                if main:
                    directory.metrics.clear()
                train_fit(
                    model, dataset, train_config, seed=config.seed, run=directory,
                    progress=progress,
                )  # fmt: skip
        _save_pictures(model, dataset, directory, config.seed)
    return model.eval()


def _config_section(directory: RunDirectory, cls: type, values: dict[str, Any], name: str) -> Any:
    """``build(cls, values)`` with the error naming the run's ``config.json`` and the field."""
    try:
        return build(cls, values, what=f"{name} config")
    except ConfigError as exc:
        raise CheckpointError(f"{directory.config_path}: field {name!r}: {exc}") from None


def _model_from_config(directory: RunDirectory, config: RunConfig) -> GenerativeModel:
    """The run's model, with what its settings left to the data as it was decided then
    (``decided``), so that a later genlab whose rule for ``"auto"`` differs builds the same
    network; a field the run's config lacks (added since) takes the family's
    ``settings_before``."""
    try:
        cls = family_class(config.family)
        info = DataInfo.from_json(config.data["info"], "data.info")
    except (ConfigError, DataError) as exc:
        raise CheckpointError(f"{directory.config_path}: {exc}") from None
    decided = config.decided or {}
    values = {**cls.settings_before, **config.model, **decided}
    model_config = _config_section(directory, cls.config_class, values, "model")
    try:
        model = build_model(config.family, model_config, info, config.seed)
    except ConfigError as exc:
        raise CheckpointError(f"{directory.config_path}: field 'model': {exc}") from None
    model.decisions = dict(decided)
    return model


def load(run: str | Path, *, device: str = "cpu") -> GenerativeModel:
    """The trained model of a run directory: its final weights, or, while it trains or after it
    was stopped, its last checkpoint (with a warning that says which)."""
    directory = RunDirectory(run)
    model = _model_from_config(directory, directory.read_config())
    source = directory.model_path
    if not source.exists():
        holder = directory.writer()
        state = f"is being trained by {holder}" if holder else "has not finished"
        if not directory.checkpoint_path.exists():
            way = "" if holder else f"; `genlab resume {directory.path}` trains it"
            raise CheckpointError(f"{directory.path}: {state} and has no weights yet{way}")
        source = directory.checkpoint_path
        finish = "" if holder else f" (`genlab resume {directory.path}` finishes it)"
        logger.warning("%s %s; reading its last checkpoint%s", directory.path, state, finish)
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
    """The dataset a run was trained on (re-loaded from its spec and seed; refused if its
    fingerprint changed since)."""
    directory = RunDirectory(run)
    config = directory.read_config()
    dataset = _load_run_data(directory, config)
    _check_fingerprint(
        directory, config, dataset, allow_change=False,
        way_out=f"pass --data {config.data['spec']} to evaluate on the data as it is now",
    )  # fmt: skip
    return dataset


def _load_run_data(directory: RunDirectory, config: RunConfig) -> Dataset:
    spec = config.data["spec"]
    if spec not in data_module.DATASETS and not Path(spec).exists():
        raise DataError(
            f"{directory.path}: was trained on {spec}, which no longer exists; restore it there"
        )
    return data_module.load(spec, seed=config.data["seed"])


def _check_fingerprint(
    directory: RunDirectory,
    config: RunConfig,
    dataset: Dataset,
    *,
    allow_change: bool,
    way_out: str,
) -> None:
    """Refuse data whose fingerprint differs from the run's, or, with ``allow_change``, record
    the change in ``config.json``."""
    recorded, now = config.data["fingerprint"], dataset.fingerprint()
    if recorded == now:
        return
    if not allow_change:
        raise DataError(
            f"{directory.path}: was trained on data with fingerprint {recorded[:19]}..., but "
            f"{config.data['spec']} now gives {now[:19]}... (the data changed); {way_out}"
        )
    if not distributed.current().is_main:  # rank 0 alone records it
        return
    change = {"from": recorded, "to": now, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data = {
        **config.data,
        "fingerprint": now,
        "changes": [*config.data.get("changes", []), change],
    }
    directory.write_config(dataclasses.replace(config, data=data))
    logger.warning("%s: the data changed; recorded in %s", directory.path, directory.config_path)


@torch.no_grad()
def _save_pictures(
    model: GenerativeModel, dataset: Dataset, run: RunDirectory, seed: int, pixels: Pixels = "mean"
) -> None:
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
    samples, what = picture_samples(model.eval(), n, pixels, generator=generator, **context)
    save_samples(samples.cpu(), run.samples_path, dataset.info, reference=dataset.x_test)
    logger.info("%s: %s", run.samples_path, what)


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
    options: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """``(n, *event_shape)`` draws of class ``label`` (or of each label of a tensor of ``n``).

    A model of :math:`p(x \\mid y)` (``capabilities.context``) samples given the label, with
    its sampler's ``options`` (:meth:`~genlab.models.GenerativeModel.sampler_options`); any
    other model that samples posteriors is guided by the domain classifier of ``data``
    (:func:`genlab.metrics.domain.domain_network`, cached in ``cache_dir``), with weight
    ``weight`` (:mod:`genlab.metrics.conditioning`).
    """
    classes = torch.as_tensor(label).long()
    classes = classes.expand(n).clone() if classes.dim() == 0 else classes
    check_class_options(model, options)
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
        model, classes, classifier=classifier, weight=weight, generator=generator,
        mcmc=MCMCSizes(steps=steps), options=options,
    )  # fmt: skip


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
    options = model.mcmc_options("posterior", MCMCSizes(steps=steps))
    return model.sample_posterior(observation, n, generator=generator, **options)
