"""VQ-VAE and the hierarchical VAE against the plain VAE on ``digits``, on the same budget.

Each family trains on the training split with the trainer's validation split (10% of the
training images, early stopping on the validation loss, the best weights restored; the test
split is never seen), then ``genlab.evaluate`` reports on the test split:

- ``bits/dim``: the family's bound (the VAE's and HVAE's importance-weighted bound with
  k = 1000; the VQ-VAE's :math:`\\log p(x \\mid z_q) + \\log p(z_q)`), L = 17 levels;
- ``recon MSE``: mean squared error per pixel of ``decode(encode(x))`` in data units;
- ``domain FID``: Frechet distance of as many samples as test images in the features of
  genlab's digits classifier (as ``genlab compare`` scores it);
- for the VQ-VAE, the bits a code grid costs (:math:`H' W' \\log_2 K`) and the fraction of the
  codebook the training images use (one pass over the training split).

Run: ``PYTHONPATH=src python scripts/quality_vq_hvae.py [--budget fast] [--seeds 0 1 2]
[--json]`` (one torch thread: ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import genlab

FAMILIES = ("vae", "hvae", "vqvae")


def family_row(family: str, budget: str, seed: int) -> dict[str, Any]:
    """Train ``family`` on digits with ``budget`` and ``seed``; its test-split numbers."""
    data = genlab.data.load("digits")
    started = time.perf_counter()
    model = genlab.fit(family, data, budget=budget, seed=seed)
    train_seconds = time.perf_counter() - started
    result = genlab.evaluate(model, data, seed=seed, metrics=["fid"])
    row = {
        "family": family,
        "seed": seed,
        "bits_per_dim": result["bits_per_dim"],
        "log_prob_kind": result["log_prob_kind"],
        "recon_mse": result["recon_mse"],
        "domain_fid": result["fid"],
        "train_seconds": train_seconds,
    }
    if family == "vqvae":
        with torch.no_grad():
            usage = model.code_usage(data.x_train.to(model.device))
        row["code_bits"] = model.code_bits
        row["code_usage"] = usage["code_usage"]
    return row


def summary(rows: list[dict[str, Any]], key: str) -> str:
    """Mean ± standard deviation of ``key`` over the seeds' rows (the mean alone for one seed)."""
    values = [row[key] for row in rows]
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [family_row(f, args.budget, s) for f in args.families for s in args.seeds]
    print(f"digits, budget {args.budget}, seeds {args.seeds}, {torch.get_num_threads()} threads")
    print("| family | bits/dim | recon MSE | domain FID | code bits | code usage | train s |")
    print("|---|---|---|---|---|---|---|")
    for family in args.families:
        mine = [row for row in rows if row["family"] == family]
        codes = ("code_bits", "code_usage")
        vq = [summary(mine, key) if key in mine[0] else "-" for key in codes]
        print(
            f"| {family} | {summary(mine, 'bits_per_dim')} ({mine[0]['log_prob_kind']}) | "
            f"{summary(mine, 'recon_mse')} | {summary(mine, 'domain_fid')} | {vq[0]} | {vq[1]} | "
            f"{summary(mine, 'train_seconds')} |"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
