"""``genlab experiment``: the field's classic claims, each reproduced as a number and a figure.

Each experiment is a module with ``NAME``, ``CLAIM`` and ``run(seed, budget) -> ExperimentResult``;
adding one is a new module and a line in :data:`EXPERIMENTS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from genlab.errors import ConfigError
from genlab.experiments.base import BUDGETS, Budget, ExperimentResult

EXPERIMENTS: dict[str, str] = {
    "linear-ae-is-pca": "genlab.experiments.linear_ae_is_pca",
    "optimal-discriminator": "genlab.experiments.optimal_discriminator",
    "cycling": "genlab.experiments.cycling",
    "memorization": "genlab.experiments.memorization",
    "gaussian-distances": "genlab.experiments.gaussian_distances",
    "two-sample-power": "genlab.experiments.two_sample_power",
    "pareto": "genlab.experiments.pareto",
    "elbo-gap": "genlab.experiments.elbo_gap",
    "vanishing-gradients": "genlab.experiments.vanishing_gradients",
    "mode-collapse": "genlab.experiments.mode_collapse",
    "birthday-paradox": "genlab.experiments.birthday_paradox",
    "perplexity-vs-context": "genlab.experiments.perplexity_vs_context",
    "memorization-beats-truth": "genlab.experiments.memorization_beats_truth",
    "large-discriminator-overfits": "genlab.experiments.large_discriminator_overfits",
    "small-discriminator-fooled": "genlab.experiments.small_discriminator_fooled",
    "discriminator-sweet-spot": "genlab.experiments.discriminator_sweet_spot",
    "no-pure-equilibrium": "genlab.experiments.no_pure_equilibrium",
    "pareto-nonconvex": "genlab.experiments.pareto_nonconvex",
    "diffusion-is-a-deep-vae": "genlab.experiments.diffusion_is_a_deep_vae",
}

__all__ = ["BUDGETS", "EXPERIMENTS", "Budget", "ExperimentResult", "experiment", "run"]


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def run(name: str, *, seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    return experiment(name).run(seed=seed, budget=budget)
