"""The ``genlab`` command line: a thin layer that maps flags onto the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import api
from genlab.config import parse_assignments
from genlab.errors import ConfigError, GenlabError
from genlab.train.distributed import current as current_distributed
from genlab.train.distributed import shutdown as shutdown_distributed

MAX_SAMPLES = 1_000_000


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genlab", description="Train and measure generative models behind one protocol."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the embedded datasets")
    sub.add_parser("families", help="list the model families and what each can do")

    train = sub.add_parser("train", help="train a model into a run directory")
    train.add_argument("family")
    train.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    train.add_argument("--out", required=True, help="run directory to create")
    train.add_argument("--seed", type=int, default=0)
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive)
    length.add_argument("--steps", type=_positive)
    train.add_argument("--budget", choices=api.BUDGETS, help="the family's documented settings")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model or training option, e.g. --set latent_dim=8 (repeatable)",
    )
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    resume = sub.add_parser("resume", help="continue a run from its last checkpoint")
    resume.add_argument("run")
    resume.add_argument("--device", default="auto")
    resume.add_argument("--no-progress", action="store_true")

    sample = sub.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run")
    sample.add_argument("-n", type=_positive, default=64, help="number of samples")
    sample.add_argument(
        "--out", required=True, help="FILE.npy (the array) or FILE.png (a picture)"
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="cpu")

    evaluate = sub.add_parser("evaluate", help="test-split metrics of a trained run")
    evaluate.add_argument("run")
    evaluate.add_argument("--data", help="evaluate on this dataset instead of the run's own")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    evaluate.add_argument(
        "--importance-samples",
        type=_positive,
        metavar="K",
        help="samples of a sampled likelihood bound (VAE default: 1000)",
    )

    compare = sub.add_parser(
        "compare", help="train several families on one split and tabulate them"
    )
    compare.add_argument("--data", default="digits")
    compare.add_argument("--models", default="pca,ae", help="comma-separated families")
    compare.add_argument("--budget", choices=api.BUDGETS, default="fast")
    compare.add_argument("--out", required=True)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--device", default="auto")
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--no-progress", action="store_true")
    experiment = sub.add_parser(
        "experiment", help="reproduce a classic claim as a number and a figure"
    )
    experiment.add_argument("name", help="an experiment, or `list`")
    experiment.add_argument("--budget", choices=("smoke", "full"), default="full")
    experiment.add_argument("--out", help="folder for NAME.png and NAME.json (required to run)")
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--json", action="store_true")
    return parser


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, default=float))


def cmd_datasets(args: argparse.Namespace) -> None:
    from genlab.data import describe

    for name, text in describe():
        print(f"{name:14s} {text}")
    print("or a path: .npy, .npz, a folder of PNG/JPEG images, MNIST IDX files")


def cmd_families(args: argparse.Namespace) -> None:
    from genlab.models import FAMILIES
    from genlab.report.table import format_table

    rows = []
    for name, cls in FAMILIES.items():
        caps = cls.capabilities
        rows.append(
            {
                "family": name,
                "sample": caps.sample,
                "log_prob": caps.log_prob,
                "encode": caps.encode,
                "decode": caps.decode,
                "conditional": caps.conditional,
            }
        )
    keys = ["family", "sample", "log_prob", "encode", "decode", "conditional"]
    print(format_table(rows, [(k, k) for k in keys]))


def cmd_train(args: argparse.Namespace) -> None:
    settings: dict[str, Any] = parse_assignments(args.set)
    for key in ("epochs", "steps"):
        if getattr(args, key) is not None:
            if key in settings:
                raise ConfigError(f"--{key} given twice (also as --set {key}=...)")
            settings[key] = getattr(args, key)
    api.fit(
        args.family,
        args.data,
        out=args.out,
        seed=args.seed,
        device=args.device,
        budget=args.budget,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        **settings,
    )
    if current_distributed().is_main:
        print(f"trained {args.family} -> {args.out}")


def cmd_resume(args: argparse.Namespace) -> None:
    api.resume(args.run, device=args.device, progress=not args.no_progress)
    print(f"resumed and finished {args.run}")


def cmd_sample(args: argparse.Namespace) -> None:
    from genlab.report.images import save_samples

    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise ConfigError(f"--out {out}: use a .npy (array) or .png (picture) file name")
    if args.n > MAX_SAMPLES:
        raise ConfigError(f"-n {args.n} is too many (at most {MAX_SAMPLES})")
    model = api.load(args.run, device=args.device)
    if not model.capabilities.sample:
        raise model.unsupported("sample")
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    with torch.no_grad():
        x = model.sample(args.n, generator=generator).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, x.numpy())
    else:
        save_samples(x, out, model.info)
    print(f"wrote {args.n} samples to {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from genlab import data as data_module
    from genlab.report.table import format_value

    model = api.load(args.run, device=args.device)
    dataset = data_module.load(args.data) if args.data else api.run_dataset(args.run)
    if dataset.info.event_shape != model.info.event_shape:
        raise ConfigError(
            f"--data {args.data}: examples of shape {dataset.info.event_shape} but the model "
            f"was trained on {model.info.event_shape}"
        )
    result = api.evaluate(
        model, dataset, seed=args.seed, importance_samples=args.importance_samples
    )
    for key, value in result.items():
        if key != "capabilities":
            print(f"{key:16s} {format_value(value)}")
    print(f"{'capabilities':16s} {', '.join(model.capabilities.supported())}")
    if args.json:
        _print_json(result)


def cmd_compare(args: argparse.Namespace) -> None:
    from genlab.compare import compare, scorecard_table

    families = [f.strip() for f in args.models.split(",") if f.strip()]
    if not families:
        raise ConfigError("--models names no family")
    rows = compare(
        args.data,
        families,
        out=args.out,
        budget=args.budget,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    print(scorecard_table(rows))
    print(f"scorecard: {Path(args.out) / 'scorecard.json'}")
    if args.json:
        _print_json({"data": args.data, "budget": args.budget, "families": rows})


def cmd_experiment(args: argparse.Namespace) -> None:
    from genlab import experiments
    from genlab.io import write_json
    from genlab.report.figures import save_figure
    from genlab.report.table import format_value

    if args.name == "list":
        for name in experiments.EXPERIMENTS:
            print(f"{name:24s} {experiments.experiment(name).CLAIM}")
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
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
    "experiment": cmd_experiment,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        COMMANDS[args.command](args)
    except GenlabError as exc:
        print(f"genlab: error: {exc}", file=sys.stderr)
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
