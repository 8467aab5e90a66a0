"""Diffusion quality: the digits bound in bits/dim, sample quality against the number of steps,
and mode coverage on ``ring`` and ``grid``.

``digits``: trains ``genlab``'s diffusion family with a budget (``full`` by default), selecting
the weights on the validation split (the trainer's 10% of the training images, scored by the
unbiased bound estimate; the test split is never seen), then reports on the test split

- the variational bound with all T terms (``genlab.evaluate``: bits/dim of the discrete bound,
  L = 17, each test image with its own noise);
- the domain FID (``genlab``'s digits classifier, as in ``genlab compare``) of as many samples
  as test images, drawn by ancestral sampling with all T steps and by deterministic DDIM with
  ``--ddim-steps`` (default 10, 20, 50, 100), each with the network calls it took;
- completion of the bottom half of every test image given the top half, as the scorecard
  scores it (the domain classifier's accuracy, MSE), by SMC (the default, ``particles``
  particles) and by replacement, with their times, next to the mean-fill baseline.

``ring`` / ``grid``: trains with the same budget and reports modes captured, high-quality
fraction and mode KL of 2,500 ancestral samples (the GAN's protocol, ``genlab.stats.modes``)
and the test NLL bound next to the true density's.

Run: ``PYTHONPATH=src python scripts/quality_diffusion.py [--data digits ring grid]
[--budget full] [--seed 0] [--set key=value ...] [--json]`` (one torch thread: ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

import genlab
from genlab.config import parse_assignments
from genlab.metrics.completion import completion_scores, mean_fill_scores
from genlab.metrics.domain import domain_network
from genlab.metrics.features import all_features
from genlab.metrics.frechet import frechet_feature_distance
from genlab.metrics.sample_quality import to_data_grid


def digits_quality(
    budget: str, seed: int, settings: dict[str, Any], ddim_steps: list[int]
) -> dict[str, Any]:
    data = genlab.data.load("digits")
    started = time.perf_counter()
    model = genlab.fit("diffusion", data, budget=budget, seed=seed, progress=True, **settings)
    train_seconds = time.perf_counter() - started
    result = genlab.evaluate(model, data, seed=seed)
    row: dict[str, Any] = {
        "data": "digits",
        "budget": budget,
        "settings": settings,
        "train_seconds": train_seconds,
        "test_bits_per_dim": result["bits_per_dim"],
        "test_nll_nats": result["nll_nats"],
        "log_prob_kind": result["log_prob_kind"],
    }
    net = domain_network(data, seed=seed)
    row["completion"] = {}
    particles = model.config.particles
    for name, options in (("smc", {"method": "smc"}), ("replace", {"method": "replace"})):
        started = time.perf_counter()
        scores = completion_scores(model, data, classifier=net, seed=seed, **options)
        row["completion"][name] = {**scores, "seconds": time.perf_counter() - started}
    row["completion"]["smc"]["particles"] = particles
    row["completion"]["mean_fill"] = mean_fill_scores(data, classifier=net)
    real = all_features(data.x_test, net.features)
    total = model.config.timesteps
    samplers = [("ddpm", total, {"method": "ddpm"})]
    samplers += [(f"ddim-{s}", s, {"method": "ddim", "steps": s}) for s in ddim_steps]
    row["fid"] = {}
    for name, calls, options in samplers:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        started = time.perf_counter()
        samples = model.sample(len(data.x_test), generator=generator, **options).cpu()
        seconds = time.perf_counter() - started
        fake = all_features(to_data_grid(samples, data.info), net.features)
        row["fid"][name] = {
            "network_calls": calls,
            "fid": frechet_feature_distance(real, fake),
            "seconds": seconds,
        }
    return row


def mixture_quality(name: str, budget: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    data = genlab.data.load(name)
    started = time.perf_counter()
    model = genlab.fit("diffusion", data, budget=budget, seed=seed, progress=True, **settings)
    train_seconds = time.perf_counter() - started
    result = genlab.evaluate(model, data, seed=seed)
    keys = ("modes_captured", "n_modes", "hq_fraction", "mode_kl", "nll_nats", "true_nll_nats")
    return {
        "data": name,
        "budget": budget,
        "settings": settings,
        "train_seconds": train_seconds,
        **{key: result[key] for key in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "ring", "grid"])
    parser.add_argument("--budget", default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--set", nargs="*", default=[], help="model/training options key=value")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = parse_assignments(args.set)
    rows = []
    for name in args.data:
        if name == "digits":
            row = digits_quality(args.budget, args.seed, settings, args.ddim_steps)
            print(
                f"digits: test bound {row['test_bits_per_dim']:.4f} bits/dim "
                f"({row['test_nll_nats']:.2f} nats), trained {row['train_seconds']:.0f} s"
            )
            for sampler, fid in row["fid"].items():
                print(
                    f"  {sampler:9s} {fid['network_calls']:5d} network calls  "
                    f"domain FID {fid['fid']:7.2f}  ({fid['seconds']:.0f} s)"
                )
            for method, scores in row["completion"].items():
                print(
                    f"  completion {method:9s} accuracy {scores['completion_accuracy']:.4f}  "
                    f"MSE {scores['completion_mse']:6.2f}"
                    + (f"  ({scores['seconds']:.0f} s)" if "seconds" in scores else "")
                )
        else:
            row = mixture_quality(name, args.budget, args.seed, settings)
            print(
                f"{name}: {row['modes_captured']}/{row['n_modes']} modes, high quality "
                f"{row['hq_fraction']:.4f}, mode KL {row['mode_kl']:.4f}, NLL bound "
                f"{row['nll_nats']:.3f} (truth {row['true_nll_nats']:.3f}), trained "
                f"{row['train_seconds']:.0f} s"
            )
        rows.append(row)
    print(f"seed {args.seed}, {torch.get_num_threads()} threads")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
