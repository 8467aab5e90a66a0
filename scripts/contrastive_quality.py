"""How good are contrastive codes on digits? Probe / k-NN accuracy against PCA, AE (and VAE).

Trains, for each seed, every family below with a 16-dimensional code and its default training
settings on the same stratified 75/25 split of scikit-learn's digits, then scores the codes with
genlab's linear probe (logistic regression, C by 3-fold CV on the training codes) and 5-NN,
fitted on the training codes and scored on the test codes. The VAE is included when its
family is registered. Then ``clip`` aligns the top and the bottom half of each digit and
reports top-1 / top-5 retrieval of the right half among the whole test split, both ways.

    PYTHONPATH=src python scripts/contrastive_quality.py            # seeds 0 1 2
    PYTHONPATH=src python scripts/contrastive_quality.py --seeds 0 --set temperature=0.5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import genlab
from genlab.config import parse_assignments
from genlab.metrics.representation import representation_scores
from genlab.models import FAMILIES
from genlab.report.table import format_table

CODE_SIZE = 16
BASELINES = ("pca", "ae", "vae")


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", action="append", default=[], help="simclr option KEY=VALUE (repeatable)"
    )
    parser.add_argument("--families", default=None, help="comma-separated subset to run")
    parser.add_argument("--json", help="also write the raw numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: threads cost more than they give on shared CPUs

    data = genlab.data.load("digits")
    simclr_settings = parse_assignments(args.set)
    families = [f for f in (*BASELINES, "simclr", "clip") if f in FAMILIES]
    if args.families:
        families = [f for f in families if f in args.families.split(",")]
    raw: dict[str, list[dict[str, Any]]] = {f: [] for f in families}
    for seed in args.seeds:
        for family in families:
            settings = dict(simclr_settings) if family == "simclr" else {}
            started = time.perf_counter()
            model = genlab.fit(family, data, seed=seed, latent_dim=CODE_SIZE, **settings)
            seconds = time.perf_counter() - started
            scores = representation_scores(model, data, seed=seed)
            if family == "clip":
                scores.update(model.retrieval(data.x_test))
            scores["train_seconds"] = seconds
            raw[family].append(scores)
            print(f"seed {seed} {family}: {json.dumps(scores)}", flush=True)

    rows = []
    for family, runs in raw.items():
        row = {"family": family}
        for key in ("probe_accuracy", "knn_accuracy", "train_seconds"):
            row[key] = _mean_std([r[key] for r in runs])
        rows.append(row)
    columns = [
        ("family", "family"),
        ("probe_accuracy", "linear probe (test)"),
        ("knn_accuracy", "5-NN (test)"),
        ("train_seconds", "train s"),
    ]
    print(f"\ndigits, code size {CODE_SIZE}, seeds {args.seeds} (mean ± std over seeds)")
    print(format_table(rows, columns))
    if "clip" in raw:
        runs = raw["clip"]
        print(f"\nclip, top half <-> bottom half of the {len(data.x_test)} test digits")
        for k in (1, 5):
            ab = _mean_std([r[f"retrieval_top{k}_ab"] for r in runs])
            ba = _mean_std([r[f"retrieval_top{k}_ba"] for r in runs])
            chance = runs[0][f"retrieval_chance_top{k}"]
            print(f"top-{k}: top->bottom {ab}, bottom->top {ba}, chance {chance:.4f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seeds": args.seeds, "simclr": simclr_settings, "runs": raw}, handle)


if __name__ == "__main__":
    main()
