"""Test bits/dim of the VAE and the flows on ``digits`` (L = 17), models chosen on validation.

Each model trains with the trainer's validation split (10% of the training images; the test
split is never seen), early stopping on the validation loss (``patience``) and the best
validation weights restored; then ``genlab.evaluate`` reports test bits/dim with uniform
dequantisation: the exact value for the flows, the importance-weighted bound with k = 1000 for
the VAE (and its ELBO, k = 1, for comparison). Fixed seed; a few CPU minutes in all.

Run: ``PYTHONPATH=src python scripts/quality_likelihood.py [--seed 0] [--json]``
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

import genlab

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "vae": ("vae", {"budget": "full"}),
    "flow (maf)": (
        "flow",
        {"budget": "full", "transform": "maf", "n_layers": 5, "hidden": (256, 256)},
    ),
    "flow (realnvp)": (
        "flow",
        {
            "budget": "full",
            "conditioner": "mlp",
            "random_masks": True,
            "n_layers": 8,
            "hidden": (256, 256),
        },
    ),
}


def run(seed: int = 0) -> list[dict[str, Any]]:
    data = genlab.data.load("digits")
    rows = []
    for name, (family, settings) in MODELS.items():
        started = time.perf_counter()
        model = genlab.fit(family, data, seed=seed, **settings)
        seconds = time.perf_counter() - started
        result = genlab.evaluate(model, data, seed=seed)
        row = {
            "model": name,
            "log_prob_kind": result["log_prob_kind"],
            "importance_samples": result["importance_samples"],
            "test_bits_per_dim": result["bits_per_dim"],
            "test_nll_nats": result["nll_nats"],
            "train_seconds": seconds,
        }
        if family == "vae":
            elbo = genlab.evaluate(model, data, seed=seed, importance_samples=1)
            row["test_bits_per_dim_elbo"] = elbo["bits_per_dim"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.seed)
    print(f"digits, L = 17, seed {args.seed}, {torch.get_num_threads()} threads")
    print(
        f"{'model':16s} {'log p':12s} {'k':>5s} {'bits/dim':>9s} {'ELBO b/d':>9s} {'train s':>8s}"
    )
    for row in rows:
        k = row["importance_samples"] or "-"
        elbo = row.get("test_bits_per_dim_elbo")
        elbo_text = f"{elbo:9.4f}" if elbo is not None else f"{'-':>9s}"
        print(
            f"{row['model']:16s} {row['log_prob_kind']:12s} {k!s:>5s} "
            f"{row['test_bits_per_dim']:9.4f} {elbo_text} {row['train_seconds']:8.1f}"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
