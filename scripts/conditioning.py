"""Conditioning on digits, measured: samples of a class and super-resolution posteriors.

For every conditional family (``conditional=true``: the labels are the context) and every
unconditional family that samples posteriors (classifier guidance), trained with its ``fast``
budget on digits:

- class accuracy (the domain classifier's verdict on samples of each asked class; chance 0.1),
  classification accuracy score (a classifier trained on those samples only, tested on real
  digits; one trained on real digits reaches the ``real`` row) and intra-class domain FID;
- the posterior given a 2x downsampled copy (4x4 -> 8x8) of test digits with noise sigma: the
  error of the posterior mean against the truth, next to bicubic upsampling, and the posterior
  spread at several sigmas (it must shrink as sigma shrinks); for the unconditional families
  only (a conditional family would be told the digit's label too).

A family with a guidance weight (conditional diffusion: classifier-free guidance) gets the
weight of :data:`GUIDANCE` whose samples reach the lowest intra-class domain FID on the
trainer's validation split (the field's way to choose the weight: within each class, samples of
another class and samples too alike both raise it; guidance trades the first for the second;
training digits the model never fitted, samples drawn with seed + 1, not the reported ones);
every weight's validation scores are printed, and the chosen one is in the row.

Usage (about 30 minutes on one thread here; ``--families`` runs a subset):

    OMP_NUM_THREADS=1 python scripts/conditioning.py --out runs/conditioning [--json]
    OMP_NUM_THREADS=1 python scripts/conditioning.py --families diffusion,autoregressive \\
        --conditional-only
    OMP_NUM_THREADS=1 python scripts/conditioning.py --families diffusion --guided-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

import genlab
from genlab.config import field_names
from genlab.data import Dataset
from genlab.metrics.conditioning import bicubic_mse, class_scores, measurement_scores
from genlab.metrics.domain import DomainClassifier, accuracy, domain_network
from genlab.samplers import Downsample
from genlab.train import TrainConfig
from genlab.train.loop import validation_split

# families trained with conditional=true
CONDITIONAL = ["vae", "flow", "gan", "diffusion", "autoregressive"]
GUIDED = ["vae", "flow", "gan", "bigan", "diffusion"]  # unconditional, guided by the classifier
SIGMAS = (2.0, 0.8, 0.2)  # measurement noise, digits units (0..16)
GUIDANCE = (0.0, 0.5, 1.0, 2.0, 3.0)  # classifier-free guidance weights chosen from
# settings of a conditional family beyond its fast budget, chosen on the validation split: the
# fast budget's 15 epochs leave the conditional PixelCNN at class accuracy 0.56 (test digits);
# on validation digits 60 epochs (patience 10) reach 0.90 (CAS 0.91), the MADE's fast budget 0.64.
# The conditional flow: spline couplings (validation class accuracy 0.926, intra-class FID 89.3)
# over the fast budget's affine ones (0.905, 98.5; the same with patience 50).
# Conditional diffusion (T = 1,000, as measured): at fast's 1,500 steps its unguided samples reach
# 0.66 on validation digits, at 6,000 steps 0.88 (CAS 0.93)
CONDITIONAL_SETTINGS = {
    "autoregressive": {"epochs": 60, "patience": 10},
    "diffusion": {"steps": 6000, "timesteps": 1000},
    "flow": {"transform": "spline"},
}


def trained(family: str, conditional: bool, out: Path, seed: int) -> genlab.GenerativeModel:
    run = out / f"{family}{'-conditional' if conditional else ''}"
    if (run / "model.safetensors").exists():
        return genlab.load(run)
    settings = {"conditional": True, **CONDITIONAL_SETTINGS.get(family, {})} if conditional else {}
    return genlab.fit(
        family, "digits", out=run, budget="fast", seed=seed, overwrite=True, **settings
    )


def validation_data(data: Dataset, seed: int) -> Dataset:
    """The trainer's split of the training digits (default ``val_fraction``, ``seed``), with the
    validation examples as the test split: digits the model never fitted."""
    fraction = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "val_fraction")
    train, val = validation_split(len(data.x_train), fraction, seed)
    assert data.y_train is not None
    return Dataset(
        data.x_train[train], data.x_train[val], data.info, data.y_train[train], data.y_train[val]
    )


def choose_guidance(
    model: genlab.GenerativeModel,
    data: Dataset,
    classifier: DomainClassifier,
    per_class: int,
    seed: int,
) -> float:
    """Set ``model``'s guidance weight to the one of :data:`GUIDANCE` with the lowest
    validation intra-class FID (module docstring), printing each weight's validation scores;
    returns it."""
    val, scores = validation_data(data, seed), {}
    for w in GUIDANCE:  # sample() reads the config's weight
        model.config = dataclasses.replace(model.config, guidance=w)
        scores[w] = class_scores(model, val, classifier, per_class=per_class, seed=seed + 1)
        print(json.dumps({"family": model.family, "guidance": w, "validation": scores[w]}))
    best = min(GUIDANCE, key=lambda w: scores[w]["intra_class_fid"])
    model.config = dataclasses.replace(model.config, guidance=best)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/conditioning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--examples", type=int, default=200, help="super-resolution examples")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--particles",
        type=int,
        help="SMC particles per posterior draw of the families that have them (diffusion; "
        "default: the fast budget's)",
    )
    parser.add_argument(
        "--conditional-only", action="store_true", help="only the conditional families' rows"
    )
    parser.add_argument(
        "--guided-only", action="store_true", help="only the unconditional families' rows"
    )
    parser.add_argument(
        "--families",
        type=lambda text: text.split(","),
        default=sorted(set(CONDITIONAL + GUIDED)),
        help="comma-separated families whose rows to run (default: all)",
    )
    args = parser.parse_args()
    known = sorted(set(CONDITIONAL + GUIDED))
    unknown = sorted(set(args.families) - set(known))
    if unknown:
        parser.error(f"--families: unknown {unknown}; choose from {known}")
    if args.conditional_only and args.guided_only:
        parser.error("--conditional-only and --guided-only leave no rows to run")
    out = Path(args.out)
    data = genlab.data.load("digits")
    classifier = domain_network(data, seed=args.seed, cache_dir=out)
    operator = Downsample(data.info.event_shape, 2)
    rows = []
    cases = [] if args.guided_only else [(f, True) for f in CONDITIONAL if f in args.families]
    if not args.conditional_only:
        cases += [(f, False) for f in GUIDED if f in args.families]
    for family, conditional in cases:
        model = trained(family, conditional, out, args.seed)
        if args.particles is not None and "particles" in field_names(type(model.config)):
            model.config = dataclasses.replace(model.config, particles=args.particles)
        started = time.perf_counter()
        row = {"family": family + (" (conditional)" if conditional else "")}
        if conditional and "guidance" in field_names(type(model.config)):
            row["guidance"] = choose_guidance(model, data, classifier, args.per_class, args.seed)
        row.update(class_scores(model, data, classifier, per_class=args.per_class, seed=args.seed))
        for sigma in () if conditional else SIGMAS:
            scores = measurement_scores(
                model, data, operator, sigma, n_examples=args.examples, seed=args.seed
            )
            row[f"sr_mse_{sigma:g}"] = scores["posterior_mse"]
            row[f"sr_spread_{sigma:g}"] = scores["posterior_spread"]
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(json.dumps(row), flush=True)
    baseline = {
        "real_accuracy": accuracy(classifier, data.x_test, data.y_test),
        **{
            f"bicubic_mse_{sigma:g}": bicubic_mse(
                data, operator, sigma, n_examples=args.examples, seed=args.seed
            )
            for sigma in SIGMAS
        },
    }
    print(json.dumps({"baseline": baseline}))
    header = ["family", "route", "class acc.", "CAS", "intra-class FID"]
    header += [f"SR MSE (sigma {s:g})" for s in SIGMAS] + [f"spread (sigma {s:g})" for s in SIGMAS]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        name = row["family"] + (f", guidance {row['guidance']:g}" if "guidance" in row else "")
        cells = [name, row["class_route"], f"{row['class_accuracy']:.3f}"]
        cells += [f"{row['class_cas']:.3f}", f"{row['intra_class_fid']:.1f}"]
        cells += [f"{row[f'sr_mse_{s:g}']:.2f}" if f"sr_mse_{s:g}" in row else "-" for s in SIGMAS]
        cells += [
            f"{row[f'sr_spread_{s:g}']:.2f}" if f"sr_spread_{s:g}" in row else "-" for s in SIGMAS
        ]
        print("| " + " | ".join(cells) + " |")
    bicubic = [f"{baseline[f'bicubic_mse_{s:g}']:.2f}" for s in SIGMAS]
    print("| bicubic upsampling | - | - | - | - | " + " | ".join(bicubic) + " | - | - | - |")
    print(f"domain classifier on real test digits: {baseline['real_accuracy']:.3f}")
    if args.json:
        print(json.dumps({"rows": rows, "baseline": baseline}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
