"""What ``genlab compare`` spends scoring each family at a budget, training aside.

Each family is built with the budget's settings for the data (at 28x28: the image
architectures) and trained ``--steps`` steps only, so that the scoring stages run on networks of
the budget's size at little cost; then :func:`genlab.compare.score` scores it exactly as
``compare`` does (the same test subsample, domain network, sample counts, MCMC and SMC sizes)
and the wall seconds of each stage are printed, with their sum per family and over families.
Scoring costs the same for a trained network (the passes are the same) except for MCMC step
searches and early stops, so these are the evaluation's share of a ``compare`` at the budget.

Example (README, issue 18: ``compare --budget fast`` on 28x28 images)::

    OMP_NUM_THREADS=1 python scripts/evaluation_seconds.py --data data/mnist.npz --budget fast
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import genlab
from genlab.compare import score, scoring_network, scoring_split, uses_domain_network
from genlab.metrics.stages import StageTimer
from genlab.models import FAMILIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/mnist.npz")
    parser.add_argument("--budget", default="fast", choices=("smoke", "fast", "full"))
    parser.add_argument(
        "--families", nargs="+", help="default: compare's, every family of the kind"
    )
    parser.add_argument("--steps", type=int, default=30, help="training steps of each model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = genlab.data.load(args.data)
    families = args.families or [
        name for name, cls in FAMILIES.items() if data.info.kind in cls.data_kinds
    ]
    scored = scoring_split(data, args.budget, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        classifier = None
        if uses_domain_network(data):
            started = time.perf_counter()
            classifier = scoring_network(data, args.budget, args.seed, cache)
            print(f"domain network: {time.perf_counter() - started:.0f} s", flush=True)
        total = 0.0
        for family in families:
            model = genlab.fit(family, data, budget=args.budget, steps=args.steps, seed=args.seed)
            timer = StageTimer(family, progress=False)
            row = score(
                model, scored, classifier=classifier, cache_dir=cache, seed=args.seed,
                budget=args.budget, timer=timer,
            )  # fmt: skip
            seconds = row["stage_seconds"]
            total += sum(seconds.values())
            stages = ", ".join(
                f"{name} {value:.0f}" for name, value in seconds.items() if value >= 0.5
            )
            print(f"{family}: {sum(seconds.values()):.0f} s ({stages})", flush=True)
        print(f"every family: {total:.0f} s of scoring", flush=True)


if __name__ == "__main__":
    main()
