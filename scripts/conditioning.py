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

Usage (about 30 minutes on one thread here; ``--families`` runs a subset):

    OMP_NUM_THREADS=1 python scripts/conditioning.py --out runs/conditioning [--json]
    OMP_NUM_THREADS=1 python scripts/conditioning.py --families diffusion,autoregressive \\
        --conditional-only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genlab
from genlab.metrics.conditioning import bicubic_mse, class_scores, measurement_scores
from genlab.metrics.domain import accuracy, domain_network
from genlab.samplers import Downsample

# families trained with conditional=true
CONDITIONAL = ["vae", "flow", "gan", "diffusion", "autoregressive"]
GUIDED = ["vae", "flow", "gan", "bigan"]  # unconditional families, guided by the classifier
SIGMAS = (2.0, 0.8, 0.2)  # measurement noise, digits units (0..16)


def trained(family: str, conditional: bool, out: Path, seed: int) -> genlab.GenerativeModel:
    run = out / f"{family}{'-conditional' if conditional else ''}"
    if (run / "model.safetensors").exists():
        return genlab.load(run)
    settings = {"conditional": True} if conditional else {}
    return genlab.fit(
        family, "digits", out=run, budget="fast", seed=seed, overwrite=True, **settings
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/conditioning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--examples", type=int, default=200, help="super-resolution examples")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--conditional-only", action="store_true", help="only the conditional families' rows"
    )
    parser.add_argument(
        "--families",
        type=lambda text: text.split(","),
        default=CONDITIONAL + GUIDED,
        help="comma-separated families whose rows to run (default: all)",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.families) - set(CONDITIONAL + GUIDED))
    if unknown:
        parser.error(f"--families: unknown {unknown}; choose from {CONDITIONAL + GUIDED}")
    out = Path(args.out)
    data = genlab.data.load("digits")
    classifier = domain_network(data, seed=args.seed, cache_dir=out)
    operator = Downsample(data.info.event_shape, 2)
    rows = []
    cases = [(f, True) for f in CONDITIONAL if f in args.families]
    if not args.conditional_only:
        cases += [(f, False) for f in GUIDED if f in args.families]
    for family, conditional in cases:
        model = trained(family, conditional, out, args.seed)
        started = time.perf_counter()
        row = {"family": family + (" (conditional)" if conditional else "")}
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
        cells = [row["family"], row["class_route"], f"{row['class_accuracy']:.3f}"]
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
