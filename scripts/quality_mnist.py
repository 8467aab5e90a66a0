"""The 28x28 scorecard: every family on real MNIST digits (``data/mnist.npz``), per budget and seed.

Each model trains with genlab's own defaults for the budget (the ``images`` settings layer
for 28x28 data), selected on the trainer's validation split carved from the 8,000 training
digits (the 2,000 test digits are never seen in training), and is scored on the test split:

- ``bits/dim``: test negative log-likelihood per dimension of the 256-level data, exact for
  the flow and PPCA, the importance-weighted lower bound on log p (``--importance-samples``
  k) for the VAE (so an upper bound on bits/dim);
- ``FID``: domain FID, the Frechet distance between Gaussians fitted to the penultimate
  features of a small classifier trained on the real training digits (:data:`CLASSIFIER`),
  samples against the test digits (as many samples as test digits); the reference row "real
  training digits" scores as many real digits the same way, the floor a model's FID,
  precision and recall could reach (seed s's numbers, the floor's included, are measured in
  the features of the domain network trained with seed s);
- ``precision``/``recall`` (k = 5) in the same features;
- ``confident``: fraction of samples that the classifier assigns to a class with
  probability >= 0.9 (:func:`genlab.metrics.confident_fraction`; the real test digits' own
  fraction is the reference row);
- ``completion``: completion accuracy, the classifier's accuracy on the first
  ``--completions`` test digits with their bottom half drawn by ``sample_conditional`` given
  the top half (one completion each, the family's default sampler and steps;
  :func:`genlab.metrics.completion.completion_scores`); reference rows: the real digits
  themselves and the bottom half filled with the training mean;
- ``probe``: linear-probe accuracy of the codes (families with an encoder);
- ``train s``: training seconds (wall clock, this machine, one thread; with ``--reuse``, the
  seconds the reused run recorded for its training steps).

Families whose samples add per-pixel noise to a decoder mean (VAE, PPCA) are scored twice:
their samples ``x ~ p(x | z)`` (the model's draws, the main row) and their decoder means
``E[x | z]`` (what the pictures show; row ``FAMILY (means)``). With ``--temperatures``, families
whose ``sample`` takes a ``temperature`` (the flow, the autoregressive family) are also scored
on draws at each of them (rows ``FAMILY (T=t)``: not the model's own draws, which are the main
row's); with ``--autoguidance``, families whose ``sample`` takes an ``autoguidance`` (diffusion,
the autoregressive family) are also scored on draws at each guidance weight (rows ``FAMILY
(w=w)``; ``0`` is the model's own draws, the main row's the default weight; a PixelCNN needs a
``--set guide_step=S`` unless its defaults take the copy).

Run (after ``python scripts/prepare_mnist.py``)::

    OMP_NUM_THREADS=1 python scripts/quality_mnist.py --budget fast --seeds 0 1 2 --json fast.json
    python scripts/quality_mnist.py --merge fast.json other.json   # one table of several runs
    python scripts/quality_mnist.py --runs runs/mnist --reuse ...  # score saved runs again
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import genlab
from genlab.compare import first_test_examples, run_differences
from genlab.config import parse_assignments
from genlab.metrics import ClassifierConfig, confident_fraction, domain_network
from genlab.metrics.completion import completion_scores, mean_fill_scores
from genlab.metrics.domain import accuracy
from genlab.metrics.sample_quality import score_samples
from genlab.report.images import save_image_grid
from genlab.runs import RunDirectory
from genlab.samplers import recording_sampler_warnings
from genlab.settings import resolve_settings

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("pca", "vae", "gan", "flow")
# the domain classifier of the FID features: longer than the default (capped at 220 steps, tuned
# on 1,348 8x8 digits) so that it is as good on 28x28 digits as the field's reference ones
CLASSIFIER = ClassifierConfig(epochs=10, max_steps=None)
COLUMNS = (
    "bits_per_dim", "fid", "precision", "recall", "confident", "completion", "probe", "train_s",
)  # fmt: skip


def sample_scores(
    samples: torch.Tensor, data: genlab.data.Dataset, classifier: Any, seed: int, cache: Path
) -> dict[str, float]:
    """FID, precision, recall (domain features) and the confident fraction of ``samples``."""
    card = score_samples(
        samples, data, ["fid", "prdc"], features="domain", seed=seed, n_bootstrap=0,
        classifier=CLASSIFIER, cache_dir=cache,
    ).values  # fmt: skip
    probabilities = classifier.probabilities(samples)
    return {
        "fid": card["fid"],
        "precision": card["precision"],
        "recall": card["recall"],
        "confident": confident_fraction(probabilities),
    }


def real_draws(data: genlab.data.Dataset) -> torch.Tensor:
    """As many training digits as there are test digits, drawn without replacement (seed 0): the
    sample metrics of a model that drew real digits, the floor of its FID."""
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))
    return data.x_train[order[: len(data.x_test)]]


def saved_run(
    directory: Path, family: str, data: genlab.data.Dataset, budget: str, seed: int,
    settings: dict[str, str],
) -> tuple[genlab.GenerativeModel, float] | None:  # fmt: skip
    """The finished run in ``directory`` and its recorded training seconds, if it is the model
    ``genlab.fit(family, data, budget=budget, seed=seed, **settings)`` trains; ``None`` where
    there is no finished run; an error naming the difference where the run is another model."""
    run = RunDirectory(directory)
    if not run.complete:
        return None
    resolved = resolve_settings(family, settings, budget, data.info)
    differences = run_differences(run.read_config(), family, resolved, data, seed)
    if differences:
        raise SystemExit(
            f"--reuse: {directory} is not the {budget} {family} of seed {seed} with these "
            f"settings ({'; '.join(differences)}); remove it or leave out --reuse"
        )
    return genlab.load(directory), run.read_summary()["elapsed_seconds"]


def run_family(
    family: str, data: genlab.data.Dataset, budget: str, seed: int, k: int, cache: Path,
    classifier: Any, settings: dict[str, str], pictures: Path | None, completions: int,
    runs: Path | None, temperatures: list[float], weights: list[float], reuse: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train one model (or, with ``reuse``, load its finished run from ``runs``); its row (and
    a ``(means)`` row for families with per-pixel noise, a ``(T=t)`` row per temperature for
    families that sample at one, a ``(w=w)`` row per autoguidance weight for families that
    guide); with ``pictures``, a grid of its first 64 samples (and means, and the draws of each
    extra row) there; with ``runs``, its run directory (metrics, checkpoint) there."""
    name = f"{family}-{budget}-seed{seed}"
    out = None if runs is None else runs / name
    saved = saved_run(out, family, data, budget, seed, settings) if reuse and out else None
    if saved is not None:
        model, seconds = saved
        print(f"{name}: reusing the finished run in {out}", flush=True)
    else:
        started = time.perf_counter()
        model = genlab.fit(family, data, budget=budget, seed=seed, out=out, **settings)
        seconds = time.perf_counter() - started
    result = genlab.evaluate(model, data, seed=seed, importance_samples=k)
    row: dict[str, Any] = {
        "model": family,
        "seed": seed,
        "bits_per_dim": result.get("bits_per_dim"),
        "log_prob_kind": result["log_prob_kind"],
        "importance_samples": result.get("importance_samples"),
        "probe": result.get("probe_accuracy"),
        "train_s": seconds,
    }
    rows = [row]
    if completions and model.capabilities.supports("conditional"):
        completed = first_test_examples(data, completions)
        stuck: list[str] = []  # chains that never moved: the number is the proposals'
        with recording_sampler_warnings("completions", stuck):
            scores = completion_scores(model, completed, classifier=classifier, seed=seed)
        row["completion"] = scores["completion_accuracy"]
        row["sampler_warnings"] = stuck
    if model.capabilities.sample:
        n = len(data.x_test)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            samples = model.sample(n, generator=generator)
        row.update(sample_scores(samples, data, classifier, seed, cache))
        if pictures is not None:
            save_image_grid(samples[:64], pictures / f"{name}.png", data.info)
        if model.pixel_noise:
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                means = model.sample_means(n, generator=generator)
            if pictures is not None:
                save_image_grid(means[:64], pictures / f"{name}-means.png", data.info)
            rows.append(
                {"model": f"{family} (means)", "seed": seed,
                 **sample_scores(means, data, classifier, seed, cache)}
            )  # fmt: skip
        options = inspect.signature(model.sample).parameters
        variants = [("temperature", "T", t) for t in temperatures if "temperature" in options]
        variants += [("autoguidance", "w", w) for w in weights if "autoguidance" in options]
        for option, symbol, value in variants:
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                drawn = model.sample(n, generator=generator, **{option: value})
            if pictures is not None:
                save_image_grid(drawn[:64], pictures / f"{name}-{symbol}{value}.png", data.info)
            rows.append(
                {"model": f"{family} ({symbol}={value})", "seed": seed,
                 **sample_scores(drawn, data, classifier, seed, cache)}
            )  # fmt: skip
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each model's numbers."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        summary: dict[str, Any] = {"model": name, "seeds": len(mine)}
        for key in COLUMNS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                spread = statistics.stdev(values) if len(values) > 1 else None
                summary[key] = (statistics.mean(values), spread)
        summary["log_prob_kind"] = mine[0].get("log_prob_kind")
        summary["stuck"] = [
            f"seed {r['seed']}, {note}" for r in mine for note in r.get("sampler_warnings", [])
        ]
        out.append(summary)
    return out


def markdown(summary: list[dict[str, Any]], reference: dict[str, Any]) -> str:
    """A Markdown table: mean ± standard deviation over seeds; a completion whose MCMC chains
    (over a quarter of them) never moved is marked, with the sampler's warning under the table."""

    def cell(value: tuple[float, float | None] | None, digits: int) -> str:
        if value is None:
            return "-"
        mean, spread = value
        return f"{mean:.{digits}f}" + ("" if spread is None else f" ± {spread:.{digits}f}")

    lines = [
        "| model | seeds | bits/dim | FID | precision | recall | confident | completion | probe "
        "| train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| real test digits | - | - | - | - | - | {reference['confident']:.3f} | "
        f"{cell(reference.get('completion_real'), 3)} | - | - |",
        f"| bottom half = training mean | - | - | - | - | - | - | "
        f"{cell(reference.get('completion_mean_fill'), 3)} | - | - |",
    ]
    if reference.get("training_digits"):  # files written before it have no floor row
        floor = summarise(list(reference["training_digits"].values()))[0]
        lines.insert(
            3,
            f"| real training digits (as many as the test digits) | {floor['seeds']} | - | "
            f"{cell(floor['fid'], 1)} | {cell(floor['precision'], 3)} | "
            f"{cell(floor['recall'], 3)} | - | - | - | - |",
        )
    for row in summary:
        kind = {"exact": " (exact)", "lower_bound": " (bound)"}.get(row.get("log_prob_kind"), "")
        bpd = cell(row.get("bits_per_dim"), 3)
        lines.append(
            f"| {row['model']} | {row['seeds']} | {bpd}{kind if bpd != '-' else ''} | "
            f"{cell(row.get('fid'), 1)} | "
            f"{cell(row.get('precision'), 3)} | {cell(row.get('recall'), 3)} | "
            f"{cell(row.get('confident'), 3)} | {cell(row.get('completion'), 3)}"
            f"{' (chains stuck)' if row['stuck'] else ''} | "
            f"{cell(row.get('probe'), 3)} | "
            f"{cell(row.get('train_s'), 0)} |"
        )
    lines += [f"\nwarning: {row['model']}, {note}" for row in summary for note in row["stuck"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "mnist.npz"))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--budget", default="fast", choices=("smoke", "fast", "full"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--importance-samples", type=int, default=100, help="k of the VAE bound")
    parser.add_argument(
        "--completions", type=int, default=200,
        help="test digits completed per conditional family (0: no completion column)",
    )  # fmt: skip
    parser.add_argument("--cache", default=str(ROOT / "runs" / "quality-mnist"))
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--pictures", type=Path, help="folder for each model's sample grid")
    parser.add_argument("--runs", type=Path, help="folder for each model's run directory")
    parser.add_argument(
        "--reuse", action="store_true",
        help="score the finished runs already in --runs (the same family, budget, seed, "
        "settings and data) instead of training them again",
    )  # fmt: skip
    parser.add_argument(
        "--temperatures", nargs="+", type=float, default=[], metavar="T",
        help="also score draws at these temperatures (families whose sample takes one)",
    )  # fmt: skip
    parser.add_argument(
        "--autoguidance", nargs="+", type=float, default=[], metavar="W",
        help="also score draws at these autoguidance weights (diffusion, autoregressive; 0: own)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a setting for every family, as genlab train --set (to try variants)",
    )  # fmt: skip
    parser.add_argument(
        "--merge", nargs="+", type=Path, metavar="JSON",
        help="train nothing: print the table of the rows in these --json files (runs of "
        "other families or seeds, e.g. in parallel processes)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.merge:
        merged = [json.loads(path.read_text()) for path in args.merge]
        classifiers = {(m["reference"]["accuracy"], m["reference"]["confident"]) for m in merged}
        if len(classifiers) > 1:
            raise SystemExit("--merge: the files were scored by different domain classifiers")
        reference = {k: v for m in merged for k, v in m["reference"].items()}  # older: fewer
        reference["training_digits"] = {  # each file's seeds' floors
            seed: floor
            for m in merged
            for seed, floor in m["reference"].get("training_digits", {}).items()
        }
        print(markdown(summarise([r for m in merged for r in m["rows"]]), reference))
        return
    if args.reuse and args.runs is None:
        raise SystemExit("--reuse scores the runs saved in --runs: give --runs DIR")
    settings = parse_assignments(args.set)
    if args.pictures is not None:
        args.pictures.mkdir(parents=True, exist_ok=True)
    data = genlab.data.load(args.data)
    cache = Path(args.cache)
    classifier = domain_network(data, config=CLASSIFIER, cache_dir=cache).eval()
    real = real_draws(data)
    reference = {
        "accuracy": accuracy(classifier, data.x_test, data.y_test),
        "confident": confident_fraction(classifier.probabilities(data.x_test)),
        # the floor of the sample metrics, in each seed's features: real digits, as many as
        # the models draw
        "training_digits": {
            str(seed): {
                "model": "real training digits",
                **sample_scores(real, data, classifier, seed, cache),
            }
            for seed in args.seeds
        },
    }
    if args.completions:
        completed = first_test_examples(data, args.completions)
        reference["completion_real"] = (
            accuracy(classifier, completed.x_test, completed.y_test),
            None,
        )
        baseline = mean_fill_scores(completed, classifier=classifier)
        reference["completion_mean_fill"] = (baseline["completion_accuracy"], None)
    print(
        f"domain classifier: test accuracy {reference['accuracy']:.3f}, real test digits "
        f"confident {reference['confident']:.3f}; {torch.get_num_threads()} thread(s)",
        flush=True,
    )
    rows = []
    for family in args.families:
        for seed in args.seeds:
            new = run_family(
                family, data, args.budget, seed, args.importance_samples, cache, classifier,
                settings, args.pictures, args.completions, args.runs, args.temperatures,
                args.autoguidance, args.reuse,
            )  # fmt: skip
            for row in new:
                print(json.dumps(row), flush=True)
            rows += new
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"reference": reference, "rows": rows}, indent=1))
    extra = "".join(f", {item}" for item in args.set)
    print(f"\n{args.budget} budget{extra}, seeds {args.seeds}, k = {args.importance_samples}\n")
    print(markdown(summarise(rows), reference))


if __name__ == "__main__":
    main()
