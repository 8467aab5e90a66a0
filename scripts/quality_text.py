"""Held-out NLL per character on the embedded census surnames (``names``): the transformer against
the n-gram counts and Bengio's MLP.

``names`` is split 90/10 (train/test) with the data seed; the trainer carves 10% of the
training items for validation (early stopping, best weights restored), so train/validation/
test is 81/9/10. NLL per character is weighted by tokens over the whole test split, the end
token counting as a character (:func:`genlab.metrics.likelihood.token_scores`). The n-gram's
smoothing is chosen on the same validation items.

Run: ``PYTHONPATH=src nice -n 10 OMP_NUM_THREADS=1 python scripts/quality_text.py [--json]``
(tens of minutes on one thread; the transformer dominates).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

import genlab
from genlab.data.dataset import Dataset
from genlab.metrics.likelihood import token_scores
from genlab.train.loop import validation_split

SMOOTHINGS = (0.1, 0.3, 1.0, 3.0, 10.0)
NEURAL: dict[str, tuple[str, dict[str, Any]]] = {
    "transformer": (
        "transformer",
        {"budget": "full", "epochs": 16, "batch_size": 256, "lr": 3e-3, "dropout": 0.0},
    ),
    "transformer, 128 wide x 4 layers": (
        "transformer",
        {
            "budget": "full",
            "epochs": 16,
            "batch_size": 256,
            "lr": 3e-3,
            "dropout": 0.0,
            "dim": 128,
            "n_layers": 4,
        },
    ),
    "transformer, 128 wide x 4 layers, dropout 0.1, 24 epochs": (
        "transformer",
        {
            "budget": "full",
            "epochs": 24,
            "batch_size": 256,
            "lr": 3e-3,
            "dropout": 0.1,
            "dim": 128,
            "n_layers": 4,
        },
    ),
    "nplm, context 8": ("nplm", {"budget": "full", "context": 8, "epochs": 20}),
}


def _validation(data: Dataset, seed: int) -> tuple[Dataset, torch.Tensor]:
    """The trainer's own train/validation split of ``data.x_train`` (fraction 0.1)."""
    train, val = validation_split(len(data.x_train), 0.1, seed)
    return Dataset(data.x_train[train], data.x_test, data.info), data.x_train[val]


def run(seed: int = 0, only: list[str] | None = None) -> list[dict[str, Any]]:
    data = genlab.data.load("names")
    inner, x_val = _validation(data, seed)
    rows = []
    for order in (1, 2, 3, 4, 5):
        scores = {}
        for beta in SMOOTHINGS:
            model = genlab.fit("ngram", inner, order=order, smoothing=beta)
            scores[beta] = token_scores(model.log_prob(x_val), x_val)["nll_per_token"]
        beta = min(scores, key=scores.get)
        model = genlab.fit("ngram", data, seed=seed, order=order, smoothing=beta)
        result = genlab.evaluate(model, data, seed=seed)
        rows.append(
            {
                "model": f"{order}-gram counts (smoothing {beta})",
                "validation_nll_per_char": scores[beta],
                "test_nll_per_char": result["nll_per_token"],
                "train_seconds": 0.0,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for name, (family, settings) in NEURAL.items():
        if only and not any(o in name for o in only):
            continue
        started = time.perf_counter()
        model = genlab.fit(family, data, seed=seed, **settings)
        seconds = time.perf_counter() - started
        result = genlab.evaluate(model, data, seed=seed)
        with torch.no_grad():
            val = token_scores(model.log_prob(x_val), x_val)["nll_per_token"]
        rows.append(
            {
                "model": name,
                "validation_nll_per_char": val,
                "test_nll_per_char": result["nll_per_token"],
                "train_seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="substrings of the neural models to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.seed, args.only)
    uniform = torch.tensor(float(len(genlab.data.load("names").info.vocabulary))).log()
    print(f"names (census surnames), seed {args.seed}; uniform: {float(uniform):.3f} nats/char")
    print(f"{'model':36s} {'val nats/char':>14s} {'test nats/char':>15s} {'train s':>8s}")
    for row in rows:
        print(
            f"{row['model']:36s} {row['validation_nll_per_char']:14.4f} "
            f"{row['test_nll_per_char']:15.4f} {row['train_seconds']:8.0f}"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
