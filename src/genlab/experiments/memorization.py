r"""Memorisation: a model can beat the true distribution's likelihood on its training set.

A Gaussian kernel density estimate :math:`\hat p_h(x) = \frac1n \sum_i \mathcal N(x; x_i, h^2 I)`
with a small bandwidth :math:`h` puts a spike on every training point: its *training*
log-likelihood grows like :math:`-\log(2\pi h^2 n)` without bound, far above the true density's,
while its *test* log-likelihood collapses. Only held-out data tells the two apart, which is why
genlab selects models on a validation split. Data: 200 training points from ``moons``, whose
true density genlab knows.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KernelDensity

from genlab.data import toy_distribution
from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import new_figure

NAME = "memorization"
CLAIM = (
    "A kernel density estimate with a small bandwidth has a higher training log-likelihood than "
    "the true distribution, and a lower test log-likelihood."
)
N_TRAIN, N_VALIDATION = 200, 1000
N_TEST = {"smoke": 2000, "full": 20000}
BANDWIDTHS = np.logspace(-3, 0, 16)


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    truth = toy_distribution("moons")
    generator = torch.Generator().manual_seed(seed)
    train = truth.sample(N_TRAIN, generator).double()
    validation = truth.sample(N_VALIDATION, generator).double()
    test = truth.sample(N_TEST[budget], generator).double()
    true_train = float(truth.log_prob(train).mean())
    true_test = float(truth.log_prob(test).mean())
    curves: dict[str, list[float]] = {"train": [], "validation": [], "test": []}
    for h in BANDWIDTHS:
        kde = KernelDensity(bandwidth=float(h)).fit(train.numpy())
        for split, x in (("train", train), ("validation", validation), ("test", test)):
            curves[split].append(float(kde.score_samples(x.numpy()).mean()))
    best = int(np.argmax(curves["validation"]))
    smallest = 0
    holds = curves["train"][smallest] > true_train and curves["test"][smallest] < true_test
    fig, ax = new_figure(1, width=5.5)
    ax.semilogx(
        BANDWIDTHS, curves["train"], "o-", ms=3, color="#d1495b", label="KDE, training set"
    )
    ax.semilogx(BANDWIDTHS, curves["test"], "o-", ms=3, color="#1f6fb4", label="KDE, test set")
    ax.axhline(true_train, color="#d1495b", ls=":", label="true density, training set")
    ax.axhline(true_test, color="#1f6fb4", ls=":", label="true density, test set")
    ax.axvline(BANDWIDTHS[best], color="grey", lw=0.8, label="chosen on validation")
    ax.set(xlabel="bandwidth h", ylabel="mean log-likelihood (nats)", ylim=(-6, 10))
    ax.set_title(f"KDE on {N_TRAIN} moons points")
    ax.legend(fontsize=7)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"at h = {BANDWIDTHS[smallest]:g}, KDE training log-likelihood > the truth's on the "
            "same points, and KDE test log-likelihood < the truth's"
        ),
        numbers={
            "bandwidths": BANDWIDTHS.tolist(),
            "kde_train_ll": curves["train"],
            "kde_test_ll": curves["test"],
            "true_train_ll": true_train,
            "true_test_ll": true_test,
            "bandwidth_chosen_on_validation": float(BANDWIDTHS[best]),
            "test_ll_at_chosen_bandwidth": curves["test"][best],
        },
        figure=fig,
    )
