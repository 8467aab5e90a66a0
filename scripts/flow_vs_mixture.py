"""A user's first comparison: the default flow against a 20-component Gaussian mixture on moons.

Each seed draws 20,000 two-moons points with scikit-learn (``make_moons(noise=0.05)``), saves
them as ``x`` in an ``.npz`` file and hands the path to genlab as a user would
(``genlab train flow --data moons.npz --steps 3000``: the file's seeded 80/20 split, the
family's default settings, validation and best-weight selection on the training side). The
mixture (``GaussianMixture(20)``) is fitted on the same training split; both are scored on the
held-out 4,000 points (mean log-likelihood in nats per point), next to the true density's
value on the same points (``make_moons`` draws from genlab's ``moons`` density).

The flow wins when it is above the mixture at every seed and its mean margin is larger than the
margin's seed-to-seed spread (the standard deviation of the per-seed margins: a paired
comparison, both models scored on the same points).

``--validation`` never touches the test split: it keeps only each seed's training split and
lets genlab split that 80/20 again, so that settings (``--set key=value``) can be chosen on
points carved from the training data.

Run: ``PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/flow_vs_mixture.py [--seeds 0 1 2]
[--steps 3000] [--validation] [--set key=value ...]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.mixture import GaussianMixture

import genlab
from genlab.data import Dataset

N_POINTS = 20_000
NOISE = 0.05
COMPONENTS = 20
TRUTH = genlab.data.toy_distribution("moons")  # make_moons' density: genlab's moons


def moons_file(folder: Path, seed: int, validation: bool) -> Path:
    """Write seed ``seed``'s 20,000 moons to ``folder``; with ``validation``, only its train split."""
    x, _ = make_moons(N_POINTS, noise=NOISE, random_state=seed)
    path = folder / f"moons-{seed}.npz"
    np.savez(path, x=x)
    if validation:  # genlab's own split of the file, then a second split of its training side
        train = genlab.data.load(str(path), seed=seed).x_train.double().numpy()
        path = folder / f"moons-{seed}-train.npz"
        np.savez(path, x=train)
    return path


def test_log_likelihood(model: genlab.models.GenerativeModel, data: Dataset) -> float:
    """Mean held-out log-likelihood in nats per point."""
    with torch.no_grad():
        return float(
            torch.cat([model.log_prob(c).double() for c in data.x_test.split(4096)]).mean()
        )


def run_seed(seed: int, steps: int, validation: bool, settings: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = moons_file(Path(folder), seed, validation)
        data = genlab.data.load(str(path), seed=seed)
        mixture = GaussianMixture(COMPONENTS, random_state=seed).fit(data.x_train.double().numpy())
        started = time.perf_counter()
        model = genlab.fit("flow", str(path), steps=steps, seed=seed, data_seed=seed, **settings)
        seconds = time.perf_counter() - started
    return {
        "seed": seed,
        "flow": test_log_likelihood(model, data),
        "mixture": float(mixture.score(data.x_test.double().numpy())),
        "truth": float(TRUTH.log_prob(data.x_test.double()).mean()),
        "seconds": seconds,
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
    }


def verdict(rows: list[dict[str, Any]]) -> tuple[float, float, bool]:
    """Mean margin (flow - mixture), its seed-to-seed spread, and whether the flow wins.

    The spread is the standard deviation of the per-seed margins: both models are scored on
    the same points at each seed, so the comparison is paired (the points' own variation,
    which moves both models alike, is not a difference between them).
    """
    margins = [row["flow"] - row["mixture"] for row in rows]
    spread = statistics.stdev(margins) if len(margins) > 1 else 0.0
    margin = statistics.mean(margins)
    return margin, spread, min(margins) > 0 and margin > spread


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes key=value, got {pair!r}")
        settings[key] = value
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--validation", action="store_true", help="score on a split of train")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args()
    settings = parse_settings(args.settings)
    rows = [run_seed(seed, args.steps, args.validation, settings) for seed in args.seeds]
    split = "validation (carved from train)" if args.validation else "test"
    print(
        f"two moons, noise {NOISE}, {N_POINTS:,} points; flow: {args.steps} steps, settings "
        f"{settings or 'default'}; {split} log-likelihood, nats per point"
    )
    print(f"{'seed':>4} {'train':>6} {split.split()[0]:>10} {'truth':>8} {'flow':>8} "
          f"{'GMM-20':>8} {'margin':>8} {'flow s':>7}")  # fmt: skip
    for row in rows:
        print(
            f"{row['seed']:>4} {row['n_train']:>6} {row['n_test']:>10} {row['truth']:8.4f} "
            f"{row['flow']:8.4f} {row['mixture']:8.4f} {row['flow'] - row['mixture']:+8.4f} "
            f"{row['seconds']:7.1f}"
        )
    margin, spread, wins = verdict(rows)
    print(
        f"mean margin {margin:+.4f} nats, seed-to-seed spread {spread:.4f}: "
        f"{'the flow wins' if wins else 'the flow does NOT win'}"
    )


if __name__ == "__main__":
    main()
