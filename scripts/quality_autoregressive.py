"""Exact test bits/dim of autoregressive models on ``digits`` (L = 17), chosen on validation.

Each candidate trains with the trainer's validation split (10% of the training images; the test
split is never seen), early stopping on the validation NLL (``patience``) and the best
validation weights restored. The candidate with the lowest validation NLL is *the* model; the
test bits/dim of every candidate are printed too, for scale. Likelihoods are exact: the
discrete conditionals' probability of the test images' levels.

Run: ``PYTHONPATH=src nice -n 10 OMP_NUM_THREADS=1 python scripts/quality_autoregressive.py
[--seed 0] [--only NAME ...] [--json]`` (the PixelCNN dominates: about 25 CPU minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import genlab
from genlab.runs import RunDirectory

PATIENCE = 8  # validations (epochs) without improvement before stopping
CANDIDATES: dict[str, dict[str, Any]] = {
    "pixelcnn 64x7, categorical, dropout 0.2": {"architecture": "pixelcnn", "dropout": 0.2},
    "made 2x512, natural order": {"architecture": "made", "dropout": 0.3},
    "made 2x512, 8 connectivities (natural order)": {
        "architecture": "made",
        "dropout": 0.3,
        "n_orders": 8,
    },
}


def run(seed: int = 0, only: list[str] | None = None) -> list[dict[str, Any]]:
    data = genlab.data.load("digits")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, settings) in enumerate(CANDIDATES.items()):
            if only and not any(o in name for o in only):
                continue
            out = Path(folder) / str(i)
            started = time.perf_counter()
            model = genlab.fit(
                "autoregressive",
                data,
                seed=seed,
                budget="full",
                out=out,
                patience=PATIENCE,
                **settings,
            )
            seconds = time.perf_counter() - started
            summary = RunDirectory(out).read_summary()
            result = genlab.evaluate(model, data, seed=seed)
            rows.append(
                {
                    "model": name,
                    "settings": settings,
                    "validation_nll_nats": summary["best_score"],
                    "best_step": summary["best_step"],
                    "test_bits_per_dim": result["bits_per_dim"],
                    "test_nll_nats": result["nll_nats"],
                    "train_seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    best = min(rows, key=lambda row: row["validation_nll_nats"])
    for row in rows:
        row["chosen_on_validation"] = row is best
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="substrings of candidate names to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.seed, args.only)
    print(f"digits, L = 17, seed {args.seed}, {torch.get_num_threads()} threads")
    print(f"{'model':48s} {'val nats':>9s} {'test b/d':>9s} {'train s':>8s}")
    for row in rows:
        mark = " <- chosen on validation" if row["chosen_on_validation"] else ""
        print(
            f"{row['model']:48s} {row['validation_nll_nats']:9.3f} "
            f"{row['test_bits_per_dim']:9.4f} {row['train_seconds']:8.0f}{mark}"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
