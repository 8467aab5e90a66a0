r"""Rate against distortion: the :math:`\beta`-VAE sweep and its Pareto front.

The ELBO is :math:`-(D + R)` with distortion :math:`D = \mathbb E_q[-\log p(x \mid z)]` and rate
:math:`R = \mathrm{KL}(q(z \mid x) \,\|\, p(z))`. Training on :math:`D + \beta R` for a sweep of
:math:`\beta` traces a curve: small :math:`\beta` spends rate to reconstruct well, large
:math:`\beta` compresses and reconstructs worse (Higgins et al., 2017; Alemi et al., 2018,
arXiv:1711.00464). A point is on the Pareto front when no other point has both lower rate and
lower distortion; a :math:`\beta` landing off the front was beaten on both objectives by
another weight (an optimisation failure, not a trade-off). Measured on the test split of
``digits`` (nats per image), each :math:`\beta`'s weights taken at its best validation loss:
trained to the last epoch instead, the small :math:`\beta` models over-fit the 1,347 training
images and land off the test front (at the full budget, :math:`\beta = 0.1, 0.25`).
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.api import fit
from genlab.data import load
from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import new_figure

NAME = "pareto"
CLAIM = (
    "Sweeping beta in a beta-VAE trades rate (KL) against distortion (reconstruction): as beta "
    "grows the rate falls and the distortion rises, along a Pareto front."
)
BETAS = {"smoke": (0.25, 1.0, 4.0), "full": (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)}
EPOCHS = {"smoke": 30, "full": 150}


def pareto_front(rates: np.ndarray, distortions: np.ndarray) -> np.ndarray:
    """Bool mask of the points no other point beats on both rate and distortion."""
    n = len(rates)
    return np.array([
        not any(
            rates[j] <= rates[i] and distortions[j] <= distortions[i]
            and (rates[j] < rates[i] or distortions[j] < distortions[i])
            for j in range(n)
        )
        for i in range(n)
    ])  # fmt: skip


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    data = load("digits")
    betas = BETAS[budget]
    rates, distortions = [], []
    for beta in betas:
        model = fit(
            "vae", data, seed=seed, beta=beta, latent_dim=16, epochs=EPOCHS[budget],
            patience=None, select_best=True,
        )  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        rate, distortion = model.rate_distortion(data.x_test, generator)
        rates.append(float(rate.mean()))
        distortions.append(float(distortion.mean()))
    r, d = np.array(rates), np.array(distortions)
    front = pareto_front(r, d)
    order = np.argsort(betas)
    monotone = bool(np.all(np.diff(r[order]) < 0) and np.all(np.diff(d[order]) > 0))
    fig, ax = new_figure(1, width=5.5)
    ax.plot(
        r[front][np.argsort(r[front])],
        d[front][np.argsort(r[front])],
        "-",
        color="#bbbbbb",
        zorder=0,
    )
    ax.scatter(r[front], d[front], color="#1f6fb4", label="on the Pareto front", zorder=2)
    if (~front).any():
        ax.scatter(r[~front], d[~front], color="#d1495b", marker="x", label="off the front")
    for beta, x, y in zip(betas, r, d, strict=True):
        ax.annotate(
            f"beta={beta:g}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    ax.set(xlabel="rate KL(q(z|x) || p(z))  [nats]", ylabel="distortion -log p(x|z)  [nats]")
    ax.set_title("beta-VAE on digits (test split)")
    ax.legend(fontsize=8)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=monotone and bool(front.all()),
        criterion=(
            "ordered by beta, rates strictly fall and distortions strictly rise, and every beta "
            "is on the Pareto front"
        ),
        numbers={
            "betas": list(betas),
            "rate": rates,
            "distortion": distortions,
            "negative_elbo": (r + d).tolist(),
            "on_front": front.tolist(),
            "off_front_betas": [b for b, f in zip(betas, front, strict=True) if not f],
            "monotone": monotone,
        },
        figure=fig,
    )
