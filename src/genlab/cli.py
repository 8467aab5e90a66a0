"""The ``genlab`` command line: a thin layer that maps flags onto the Python API."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from genlab import api
from genlab import data as data_module
from genlab.config import parse_assignments
from genlab.errors import ConfigError, GenlabError
from genlab.io import storage_error
from genlab.report.family import PIXELS
from genlab.train.acceleration import PRECISIONS
from genlab.train.distributed import current as current_distributed
from genlab.train.distributed import exit_worker, launched_by_torchrun
from genlab.train.distributed import shutdown as shutdown_distributed
from genlab.train.memory import reusing_freed_memory

MAX_SAMPLES = 1_000_000
BIRTHDAY_PICTURE = "birthday_pairs.png"


def _positive(text: str) -> int:
    """A positive integer, also written as ``1e6``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _seconds(text: str) -> float:
    """A positive number of seconds (``inf`` allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers (e.g. 0,1,2), got {text!r}"
        ) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


PIXELS_HELP = (
    "sample grids of families with per-pixel noise (VAE, PPCA): decoder means (mean, the "
    "default for pictures) or draws (sample)"
)
FEATURES_HELP = (
    "feature space of fid/kid/prdc: domain (a classifier trained on DATA; default for "
    "labelled data), pixels (default otherwise), or inception_v3:WEIGHTS (.safetensors or a "
    "weights-only .pth state dict, e.g. pytorch-fid's pt_inception file)"
)


THREADS_HELP = (
    "CPU threads for training (default: OMP_NUM_THREADS if set, else chosen from the size of "
    "a training step and recorded in the run's config.json)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genlab", description="Train and measure generative models behind one protocol."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the embedded datasets")
    families = sub.add_parser("families", help="list the model families and what each can do")
    families.add_argument(
        "--markdown", action="store_true", help="README's table, with each family's notes"
    )

    train = sub.add_parser("train", help="train a model into a run directory")
    train.add_argument("family")
    train.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    train.add_argument("--out", help="run directory to create (required unless --dry-run)")
    train.add_argument("--seed", type=int, default=0)
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive)
    length.add_argument("--steps", type=_positive)
    train.add_argument("--budget", choices=api.BUDGETS, help="the family's documented settings")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--threads", type=_positive, help=THREADS_HELP)
    train.add_argument(
        "--train-seconds",
        type=_seconds,
        help="fit the run's steps (and the stages counted in steps) to about this many seconds "
        "of training steps, from a step timed before training; the fitted steps are in "
        "config.json",
    )
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32 (default), or bf16: the training steps' forward passes under bfloat16 autocast",
    )
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the networks for the training steps (the first steps compile; "
        "the time is in summary.json as compile_seconds)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model or training option, e.g. --set latent_dim=8 (repeatable)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the genlab run in --out (only its files; never a folder that is not a run)",
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--pixels", choices=PIXELS, default="mean", help=PIXELS_HELP)
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="print every resolved setting, its value and where it came from; train nothing",
    )

    resume = sub.add_parser(
        "resume", help="finish a run: from its last checkpoint, or from the start if it has none"
    )
    resume.add_argument("run")
    resume.add_argument("--device", default="auto")
    resume.add_argument("--threads", type=_positive, help=THREADS_HELP)
    resume.add_argument("--no-progress", action="store_true")
    resume.add_argument(
        "--allow-data-change",
        action="store_true",
        help="go on although the data's fingerprint changed since training (recorded in the run)",
    )

    sample = sub.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run")
    sample.add_argument("-n", type=_positive, default=64, help="number of samples")
    sample.add_argument(
        "--out",
        required=True,
        help="FILE.npy (the array), FILE.png (a picture) or, for text, FILE.txt (one per line)",
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="cpu")
    sample.add_argument(
        "--class",
        dest="label",
        type=int,
        help="draw this class: given the label (conditional=true), else guided by the domain "
        "classifier",
    )
    sample.add_argument(
        "--guidance-weight", type=float, default=1.0, help="classifier guidance weight"
    )
    sample.add_argument(
        "--pixels",
        choices=PIXELS,
        help=PIXELS_HELP + "; default: mean for a .png, sample for a .npy",
    )
    sample.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sampler option of the family (repeatable), e.g. diffusion's --set method=ddim "
        "--set steps=50 --set autoguidance=0, the flow's --set temperature=0.8",
    )

    complete = sub.add_parser(
        "complete", help="draw x given a measurement y = f(x) of each input (posterior samples)"
    )
    complete.add_argument("run")
    complete.add_argument(
        "--operator",
        required=True,
        help="f: downsample:F, blur:SIZE[:STD], projection:M[:SEED] or mask:top",
    )
    complete.add_argument("--input", required=True, help="X.npy: the examples to measure")
    complete.add_argument("-n", type=_positive, default=8, help="draws per example")
    complete.add_argument(
        "--noise-std", type=float, help="sigma of y = f(x) + sigma * noise (default 5%% of range)"
    )
    complete.add_argument(
        "--out", required=True, help="FILE.npy (n, batch, ...) or FILE.png (rows: truth, draws)"
    )
    complete.add_argument("--steps", type=_positive, default=300, help="MCMC transitions")
    complete.add_argument("--seed", type=int, default=0)
    complete.add_argument("--device", default="cpu")

    evaluate = sub.add_parser("evaluate", help="test-split metrics of a trained run")
    evaluate.add_argument("run")
    evaluate.add_argument("--data", help="evaluate on this dataset instead of the run's own")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    evaluate.add_argument(
        "--metrics",
        default="",
        help="sample-quality metrics, comma-separated: fid, fid_inf, kid, prdc, is, "
        "confident, memorization, birthday, cas, fresh_disc, or all",
    )
    evaluate.add_argument(
        "--n-samples", type=_positive, help="generated samples (default: n_test)"
    )
    evaluate.add_argument("--bootstrap", type=_count, default=100, help="resamples for fid's CI")
    evaluate.add_argument("--features", help=FEATURES_HELP)
    evaluate.add_argument(
        "--cache", help="folder caching the domain feature network (default: RUN/cache)"
    )

    evaluate.add_argument(
        "--importance-samples",
        type=_positive,
        metavar="K",
        help="samples of a sampled likelihood bound (VAE default: 1000)",
    )

    score = sub.add_parser(
        "score", help="the sample-quality card of sample files or image folders"
    )
    score.add_argument(
        "samples",
        nargs="+",
        metavar="SAMPLES",
        help=".npy/.npz samples or a folder of images; several are compared side by side",
    )
    score.add_argument("--data", required=True, help="dataset name or path (the reference)")
    score.add_argument(
        "--metrics", help="comma-separated metrics or all (default: all that DATA allows)"
    )
    score.add_argument("--features", help=FEATURES_HELP)
    score.add_argument(
        "--n-samples", type=_positive, help="score a seeded random subset of this many"
    )
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--bootstrap", type=_count, default=100, help="resamples for fid's CI")
    score.add_argument(
        "--cache",
        help="folder caching the domain feature network (default: $XDG_CACHE_HOME/genlab "
        "or ~/.cache/genlab)",
    )
    score.add_argument("--out", help="folder for score.json and the birthday pairs picture")
    score.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )

    _add_stats_parser(sub)

    compare = sub.add_parser(
        "compare", help="train several families on one split and tabulate them"
    )
    compare.add_argument("--data", default="digits")
    compare.add_argument("--models", help="comma-separated families (default: all)")
    compare.add_argument("--budget", choices=api.BUDGETS, default="fast")
    compare.add_argument("--out", required=True)
    seeds = compare.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="one seed (default 0)")
    seeds.add_argument(
        "--seeds",
        type=_seeds,
        help="several seeds, e.g. 0,1,2: every number as mean ± standard deviation over them",
    )
    compare.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown (README's)"
    )
    compare.add_argument("--device", default="auto")
    compare.add_argument("--threads", type=_positive, help=THREADS_HELP)
    compare.add_argument(
        "--train-seconds",
        type=_seconds,
        help="fit each family's steps to about this many seconds of training steps, from a "
        "step timed before it trains (default: 30 at --budget fast on images 16 pixels a side "
        "or more, else the budget's own steps; inf: always the budget's own steps)",
    )
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--no-progress", action="store_true")
    compare.add_argument("--pixels", choices=PIXELS, default="mean", help=PIXELS_HELP)
    experiment = sub.add_parser(
        "experiment", help="reproduce a classic claim as a number and a figure"
    )
    experiment.add_argument("name", help="an experiment, or `list`")
    experiment.add_argument("--budget", choices=("smoke", "full"), default="full")
    experiment.add_argument("--out", help="folder for NAME.png and NAME.json (required to run)")
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--json", action="store_true")
    return parser


def _add_stats_parser(sub: Any) -> None:
    from genlab.metrics.sample_distances import DISTANCE_METRICS
    from genlab.stats.kernels import KERNELS
    from genlab.stats.transport import OT_METHODS
    from genlab.stats.two_sample import TWO_SAMPLE_TESTS

    stats = sub.add_parser("stats", help="distances and tests between two .npy sample files")
    commands = stats.add_subparsers(dest="stats_command", required=True)
    distance = commands.add_parser("distance", help="a distance between two sample sets")
    distance.add_argument("a", help="A.npy, rows are samples")
    distance.add_argument("b", help="B.npy, rows are samples")
    distance.add_argument("--metric", choices=DISTANCE_METRICS, default="mmd")
    distance.add_argument("--bootstrap", type=int, default=100, help="resamples (0: no CI)")
    distance.add_argument("--bins", type=_positive, default=20, help="histogram bins per axis")
    distance.add_argument("--pseudocount", type=float, help="added to histogram cells")
    distance.add_argument("--k", type=_positive, default=5, help="neighbour order (knn-kl)")
    distance.add_argument("--kernel", choices=tuple(KERNELS), default="rbf")
    distance.add_argument("--ot-method", choices=OT_METHODS, default="exact")
    distance.add_argument("--p", type=float, default=2.0, help="OT ground cost |x-y|^p")
    distance.add_argument("--reg", type=float, default=0.05, help="Sinkhorn regularisation")
    distance.add_argument("--seed", type=int, default=0)
    distance.add_argument("--json", action="store_true")
    prdc = commands.add_parser("prdc", help="precision, recall, density, coverage")
    prdc.add_argument("real")
    prdc.add_argument("fake")
    prdc.add_argument("--k", type=_positive, default=5)
    prdc.add_argument("--json", action="store_true")
    test = commands.add_parser("two-sample", help="a two-sample test of P = Q")
    test.add_argument("a")
    test.add_argument("b")
    test.add_argument("--test", choices=tuple(TWO_SAMPLE_TESTS), default="mmd")
    test.add_argument("--alpha", type=float, default=0.05)
    test.add_argument("--permutations", type=_positive, default=500)
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--json", action="store_true")


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, default=float))


def cmd_datasets(args: argparse.Namespace) -> None:
    from genlab.data import describe

    for name, text in describe():
        print(f"{name:14s} {text}")
    print("or a path: .npy, .npz, a folder of PNG/JPEG images, MNIST IDX files")


def cmd_families(args: argparse.Namespace) -> None:
    from genlab.models import FAMILIES, TASKS, capability_table
    from genlab.report.table import format_markdown, format_table

    if args.markdown:
        columns = [("family", "family")] + [(task.name, task.title) for task in TASKS]
        print(format_markdown(capability_table(), [*columns, ("context", "context=")]))
        return
    rows = []
    for name, cls in FAMILIES.items():
        caps = cls.capabilities
        row: dict[str, Any] = {"family": name}
        row.update({task.name: caps.describe(task.name) for task in TASKS})
        row["context"] = caps.context
        rows.append(row)
    columns = [("family", "family")] + [(task.name, task.title) for task in TASKS]
    print(format_table(rows, [*columns, ("context", "context=")]))


def cmd_train(args: argparse.Namespace) -> None:
    settings: dict[str, Any] = parse_assignments(args.set)
    flags = {"epochs": args.epochs, "steps": args.steps, "precision": args.precision}
    flags["compile"] = True if args.compile else None
    for key, value in flags.items():
        if value is not None:
            if key in settings:
                raise ConfigError(f"--{key} given twice (also as --set {key}=...)")
            settings[key] = value
    if args.dry_run:
        api.resolve_settings(args.family, settings, args.budget)  # errors before the data
        info = data_module.load(args.data).info  # settings depend on the image size
        resolved = api.resolve_settings(args.family, settings, args.budget, info)
        print(resolved.to_text())
        decided = api.build_model(args.family, resolved.model, info).decisions_text()
        if decided:
            print(
                f"\ndecided by the data ({info.name}, shape {tuple(info.event_shape)}): {decided}"
            )
        print("\ndry run: nothing trained, no run directory created")
        return
    if args.out is None:
        raise ConfigError("genlab train needs --out DIR (or --dry-run)")
    api.fit(
        args.family,
        args.data,
        out=args.out,
        seed=args.seed,
        device=args.device,
        budget=args.budget,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        pixels=args.pixels,
        threads=args.threads,
        train_seconds=args.train_seconds,
        **settings,
    )
    if current_distributed().is_main:
        print(f"trained {args.family} -> {args.out}")


def cmd_resume(args: argparse.Namespace) -> None:
    api.resume(
        args.run,
        device=args.device,
        progress=not args.no_progress,
        allow_data_change=args.allow_data_change,
        threads=args.threads,
    )
    print(f"resumed and finished {args.run}")


def cmd_sample(args: argparse.Namespace) -> None:
    from genlab.io import writable_folder
    from genlab.report.family import picture_samples
    from genlab.report.images import grid_layout, save_samples

    out = _output_file(Path(args.out), text=True)
    if args.n > MAX_SAMPLES:
        raise ConfigError(f"-n {args.n} is too many (at most {MAX_SAMPLES:,})")
    model = api.load(args.run, device=args.device)
    if not model.capabilities.sample:
        raise model.unsupported("sample")
    options = model.sampler_options(parse_assignments(args.set))
    if model.info.kind != "text" and out.suffix == ".txt":
        raise ConfigError(
            f"--out {out}: use a .npy (array) or .png (picture) file name (.txt is for text)"
        )
    if model.info.kind == "text" and out.suffix == ".png":
        raise ConfigError(f"--out {out}: a text model writes .txt (one item per line) or .npy")
    if out.suffix == ".png" and model.info.kind == "image":
        grid_layout(args.n, model.info)  # a picture too large to draw: refused before sampling
    n_classes = model.info.n_classes
    if args.label is not None and not (n_classes and 0 <= args.label < n_classes):
        raise ConfigError(
            f"--class {args.label}: the run's data has "
            + (f"classes 0..{n_classes - 1}" if n_classes else "no labels")
        )
    if args.label is not None:
        data = None if model.capabilities.context else api.run_dataset(args.run)
        run = Path(args.run)
        x = api.sample_class(
            model, args.label, args.n, data=data, weight=args.guidance_weight, seed=args.seed,
            cache_dir=run / "cache" if writable_folder(run) else None, options=options,
        ).detach().cpu()  # fmt: skip
    else:
        context = {}
        if model.capabilities.context:  # a conditional model: every class in turn
            context["context"] = torch.arange(args.n, device=model.device) % n_classes
        generator = torch.Generator(device=model.device).manual_seed(args.seed)
        pixels = args.pixels or ("mean" if out.suffix == ".png" else "sample")
        with torch.no_grad():
            x = picture_samples(
                model, args.n, pixels, generator=generator, options=options, **context
            )[0].cpu()
    if out.suffix == ".npy":
        _save_npy(out, x.numpy())
    else:
        save_samples(x, out, model.info)
    print(f"wrote {args.n} samples to {out}")


def _output_file(out: Path, *, text: bool = False) -> Path:
    """``--out`` of ``sample``/``complete``: a .npy or .png (or, with ``text``, .txt) file name,
    not a folder."""
    suffixes = (".npy", ".png", ".txt") if text else (".npy", ".png")
    if out.suffix not in suffixes:
        kinds = ".npy (array), .png (picture)" + (" or .txt (text)" if text else "")
        raise ConfigError(f"--out {out}: use a {kinds} file name")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name ({', '.join(suffixes)})")
    return out


def _save_npy(out: Path, array: np.ndarray) -> None:
    """``np.save``, written atomically (a kill or a full disk leaves no half file)."""
    from genlab.io import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(out, buffer.getvalue())


def cmd_complete(args: argparse.Namespace) -> None:
    from genlab.metrics.sample_distances import read_samples
    from genlab.report.images import grid_layout, save_image_grid
    from genlab.samplers import recording_sampler_warnings

    out = _output_file(Path(args.out))
    model = api.load(args.run, device=args.device)
    x = read_samples(args.input).float()  # (N, D), checked
    shape = model.info.event_shape
    if x.shape[1] != model.info.n_features:
        raise ConfigError(
            f"--input {args.input}: examples of {x.shape[1]} values, but the model was trained "
            f"on examples of shape {shape} ({model.info.n_features} values)"
        )
    x = x.view(-1, *shape)
    if out.suffix == ".png" and model.info.kind == "image":  # too large to draw: refused first
        grid_layout(len(x) * (args.n + 1), model.info, n_columns=args.n + 1)
    stuck: list[str] = []
    with recording_sampler_warnings("draws", stuck):
        draws = api.complete(
            model, x, args.operator, args.n, noise_std=args.noise_std, seed=args.seed,
            steps=args.steps,
        ).detach().cpu()  # fmt: skip
    _print_notes(stuck, "warning: ")
    if out.suffix == ".npy":
        _save_npy(out, draws.numpy())
    elif model.info.kind != "image":
        raise ConfigError("--out .png draws pictures of images; use .npy for vector data")
    else:  # one row per example: the truth, then its draws
        rows = torch.cat([x.unsqueeze(1), draws.transpose(0, 1)], 1)
        save_image_grid(rows.flatten(0, 1), out, model.info, n_columns=args.n + 1)
    print(f"wrote {args.n} draws for each of {len(x)} examples to {out}")


def _save_birthday_pairs(result: Any, path: Path, info: Any) -> Path | None:
    """Draw a :class:`SampleQualityResult`'s near-duplicate pairs (if any) to ``path``."""
    from genlab.report.pairs import save_pairs

    if result.birthday_pairs is None:
        return None
    a, b = result.birthday_pairs
    return save_pairs(a, b, path, info, title="near-duplicate pairs")


def _print_notes(notes: Sequence[str], prefix: str = "") -> None:
    for note in notes:
        print(f"{prefix}{note}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from genlab import data as data_module
    from genlab.io import writable_folder
    from genlab.metrics.feature_spaces import parse_features
    from genlab.metrics.sample_quality import parse_metrics, sample_quality
    from genlab.metrics.stages import StageTimer
    from genlab.report.table import format_stage_seconds, format_value

    metrics = parse_metrics(args.metrics) if args.metrics else []
    if args.features:
        parse_features(args.features)
    run = Path(args.run)
    cache = Path(args.cache) if args.cache else run / "cache"
    if cache.exists() and not cache.is_dir():
        raise ConfigError(f"--cache {cache}: is a file; give a folder for the cache")
    if args.n_samples is not None and args.n_samples > MAX_SAMPLES:
        raise ConfigError(f"--n-samples {args.n_samples} is too many (at most {MAX_SAMPLES:,})")
    model = api.load(args.run, device=args.device)
    dataset = data_module.load(args.data) if args.data else api.run_dataset(args.run)
    if dataset.info.event_shape != model.info.event_shape:
        raise ConfigError(
            f"--data {args.data}: examples of shape {dataset.info.event_shape} but the model "
            f"was trained on {model.info.event_shape}"
        )
    timer = StageTimer("evaluate", progress=True)
    result = api.evaluate(
        model, dataset, seed=args.seed, importance_samples=args.importance_samples, timer=timer
    )
    if metrics:
        writable = run.is_dir() and writable_folder(run)
        if not writable:  # a finished run on a read-only medium: measure, write nothing there
            print(
                f"genlab: note: {run} is not writable: the domain network is not cached there "
                "(--cache DIR caches it elsewhere) and no picture is written",
                file=sys.stderr,
            )
        with timer.stage("sample metrics"):
            quality = sample_quality(
                model,
                dataset,
                metrics,
                seed=args.seed,
                n_samples=args.n_samples,
                n_bootstrap=args.bootstrap,
                features=args.features,
                cache_dir=cache if args.cache or writable else None,
            )
        result.update(quality.to_json())
        result["stage_seconds"] = dict(timer.seconds)
        if writable:
            picture = _save_birthday_pairs(quality, run / BIRTHDAY_PICTURE, dataset.info)
            if picture is not None:
                result["birthday_pairs"] = str(picture)
    timer.close()
    for key, value in result.items():
        if key not in ("capabilities", "notes", "stage_seconds"):
            print(f"{key:16s} {format_value(value)}")
    print(f"{'stage_seconds':16s} {format_stage_seconds(result['stage_seconds'])}")
    print(f"{'capabilities':16s} {', '.join(model.capabilities.supported())}")
    if model.info.kind == "text":
        print(
            f"{'convention':16s} per token over the whole test split: each item's characters "
            "and its end token count, padding does not; bits/char = nll / ln 2, "
            "perplexity = exp(nll)"
        )
    _print_notes(result.get("notes", []))
    if args.json:
        _print_json(result)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/genlab``, or ``~/.cache/genlab``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genlab"


def cmd_score(args: argparse.Namespace) -> None:
    from genlab import data as data_module
    from genlab.data.samples import read_sample_set
    from genlab.io import write_json
    from genlab.metrics.feature_spaces import parse_features
    from genlab.metrics.sample_quality import comparability_warnings, parse_metrics
    from genlab.report.table import format_table

    metrics = parse_metrics(args.metrics) if args.metrics else None
    if args.features:
        parse_features(args.features)
    if len(set(args.samples)) < len(args.samples):
        raise ConfigError("the same SAMPLES are named twice")
    dataset = data_module.load(args.data)
    sets = {name: read_sample_set(name, dataset.info) for name in args.samples}
    for name, sample_set in sets.items():
        if args.n_samples is not None and args.n_samples > len(sample_set.x):
            raise ConfigError(
                f"--n-samples {args.n_samples} but {name} holds {len(sample_set.x)} samples"
            )
    results = {
        name: api.score(
            sample_set,
            dataset,
            metrics=metrics,
            features=args.features,
            seed=args.seed,
            n_samples=args.n_samples,
            n_bootstrap=args.bootstrap,
            cache_dir=args.cache or default_cache_dir(),
        )
        for name, sample_set in sets.items()
    }
    payload = {name: result.to_json() for name, result in results.items()}
    for index, (name, result) in enumerate(results.items()):
        if args.out is not None:
            file = BIRTHDAY_PICTURE if len(results) == 1 else f"birthday_pairs_{index + 1}.png"
            picture = _save_birthday_pairs(result, Path(args.out) / file, dataset.info)
            if picture is not None:
                payload[name]["birthday_pairs"] = str(picture)
    keys = list(dict.fromkeys(k for entry in payload.values() for k in entry if k != "notes"))
    rows = [{"metric": key, **{name: payload[name].get(key) for name in payload}} for key in keys]
    print(format_table(rows, [("metric", "metric"), *((name, name) for name in payload)]))
    for name, result in results.items():
        _print_notes(result.notes, f"{name}: " if len(results) > 1 else "")
    warnings = comparability_warnings(results)
    _print_notes(warnings)
    summary = {"data": args.data, "samples": payload, "warnings": warnings}
    if args.out is not None:
        write_json(Path(args.out) / "score.json", summary)
        print(f"wrote {Path(args.out) / 'score.json'}")
    if args.json:
        _print_json(summary)


def cmd_compare(args: argparse.Namespace) -> None:
    from genlab.compare import baseline_note, compare, scorecard_table

    families = None
    if args.models is not None:
        families = [f.strip() for f in args.models.split(",") if f.strip()]
        if not families:
            raise ConfigError("--models names no family")
    scorecard = compare(
        args.data,
        families,
        out=args.out,
        budget=args.budget,
        seeds=args.seeds or [args.seed],
        device=args.device,
        progress=not args.no_progress,
        pixels=args.pixels,
        threads=args.threads,
        train_seconds=args.train_seconds,
    )
    print(scorecard_table(scorecard, markdown=args.markdown))
    for note in (scorecard.note, baseline_note(scorecard)):
        if note is not None:
            print(note)
    for row in scorecard.rows:
        _print_notes(row["sampler_warnings"], f"warning: {row['family']}, ")
    print(f"scorecard: {scorecard.json_path}")
    print(f"report:    {scorecard.report_path}")
    if args.json:
        _print_json(scorecard.to_json())


def cmd_stats(args: argparse.Namespace) -> None:
    from genlab.metrics.prdc import precision_recall_density_coverage
    from genlab.metrics.sample_distances import read_samples, sample_distance
    from genlab.report.table import format_value
    from genlab.stats.two_sample import TWO_SAMPLE_TESTS

    if args.stats_command == "distance":
        result = sample_distance(
            read_samples(args.a),
            read_samples(args.b),
            args.metric,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            bins=args.bins,
            pseudocount=args.pseudocount,
            k=args.k,
            kernel=args.kernel,
            ot_method=args.ot_method,
            p=args.p,
            reg=args.reg,
        )
    elif args.stats_command == "prdc":
        real, fake = read_samples(args.real), read_samples(args.fake)
        result = precision_recall_density_coverage(real, fake, k=args.k).to_json()
    else:
        options: dict[str, Any] = {"alpha": args.alpha}
        if args.test != "c2st":
            options["n_permutations"] = args.permutations
        generator = torch.Generator().manual_seed(args.seed)
        test = TWO_SAMPLE_TESTS[args.test]
        x, y = read_samples(args.a), read_samples(args.b)
        result = test(x, y, generator=generator, **options).to_json()
    for key, value in result.items():
        print(f"{key:12s} {format_value(value)}")
    if args.json:
        _print_json(result)


def cmd_experiment(args: argparse.Namespace) -> None:
    from genlab import experiments
    from genlab.io import write_json
    from genlab.report.figures import save_figure
    from genlab.report.table import format_value

    if args.name == "list":
        width = max(map(len, experiments.EXPERIMENTS))
        for name in experiments.EXPERIMENTS:
            print(f"{name:{width}s} {experiments.experiment(name).CLAIM}")
        return
    module = experiments.experiment(args.name)
    if args.out is None:
        raise ConfigError("genlab experiment NAME needs --out DIR")
    result = experiments.run(args.name, seed=args.seed, budget=args.budget)
    out = Path(args.out)
    figure = save_figure(result.figure, out / f"{module.NAME}.png")
    write_json(out / f"{module.NAME}.json", result.to_json())
    print(f"claim:     {result.claim}")
    print(f"criterion: {result.criterion}")
    print(f"holds:     {format_value(result.holds)}")
    for key, value in result.numbers.items():
        if not isinstance(value, list | dict):
            print(f"  {key:32s} {format_value(value)}")
    print(f"figure: {figure}")
    if args.json:
        _print_json(result.to_json())


COMMANDS = {
    "datasets": cmd_datasets,
    "families": cmd_families,
    "train": cmd_train,
    "resume": cmd_resume,
    "sample": cmd_sample,
    "complete": cmd_complete,
    "evaluate": cmd_evaluate,
    "score": cmd_score,
    "compare": cmd_compare,
    "experiment": cmd_experiment,
    "stats": cmd_stats,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error genlab expects is one ``genlab: error:`` line and exit 2.

    Besides :class:`GenlabError`, an operating-system error that escaped the library (a file
    system refusing a read or write) and running out of memory are such errors: they are the
    machine's answer, not a bug, and get one line too.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        with reusing_freed_memory():
            COMMANDS[args.command](args)
    except GenlabError as exc:
        print(f"genlab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "a file"
        print(f"genlab: error: {storage_error(exc, 'use', where)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "genlab: error: out of memory; use smaller data, a smaller model or fewer samples",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "genlab: interrupted (the last checkpoint is kept; `genlab resume RUN` continues)",
            file=sys.stderr,
        )
        return 130
    finally:
        shutdown_distributed()
    return 0


def run() -> NoReturn:
    """The ``genlab`` command (and ``python -m genlab``): :func:`main` on ``sys.argv``, then
    exit with its code; a ``torchrun`` worker by :func:`~genlab.train.distributed.exit_worker`."""
    code = main()
    if launched_by_torchrun():
        exit_worker(code)
    sys.exit(code)
