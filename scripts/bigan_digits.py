"""Linear-probe and k-NN accuracy of BiGAN codes on digits, against the untrained encoder.

For each seed and architecture: train ``bigan`` on the digits training split with the given
budget, then fit the probes on the codes of the training split and score them on the test split
(:func:`genlab.metrics.representation.representation_scores`); the same network with its initial
weights (random features, the baseline a probe on any encoder gets for free) is scored alike.

Example (the README table)::

    python scripts/bigan_digits.py --budget fast --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import genlab
from genlab.metrics.representation import representation_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="fast", choices=genlab.api.BUDGETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--architectures", nargs="+", default=["conv", "mlp"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = genlab.data.load("digits")
    rows = []
    for architecture in args.architectures:
        for seed in args.seeds:
            started = time.process_time()
            model = genlab.fit(
                "bigan", data, seed=seed, budget=args.budget, architecture=architecture
            )
            cpu_minutes = (time.process_time() - started) / 60
            untrained = genlab.api.build_model("bigan", model.config, data.info, seed=seed)
            untrained.prepare(data.x_train)
            row = {
                "architecture": architecture,
                "seed": seed,
                "trained": representation_scores(model, data, seed=seed),
                "untrained": representation_scores(untrained, data, seed=seed),
                "cpu_minutes": cpu_minutes,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\nbigan on digits, budget {args.budget}, latent {model.latent_dim}:")
    print("| encoder | probe accuracy | k-NN accuracy | CPU minutes per run |")
    print("|---|---|---|---|")
    for architecture in args.architectures:
        group = [r for r in rows if r["architecture"] == architecture]
        for which in ("untrained", "trained"):
            probe = [r[which]["probe_accuracy"] for r in group]
            knn = [r[which]["knn_accuracy"] for r in group]
            minutes = statistics.fmean(r["cpu_minutes"] for r in group)
            print(
                f"| {architecture}, {which} | {statistics.fmean(probe):.3f} "
                f"(min {min(probe):.3f}) | {statistics.fmean(knn):.3f} (min {min(knn):.3f}) | "
                + (f"{minutes:.1f} |" if which == "trained" else "- |")
            )


if __name__ == "__main__":
    main()
