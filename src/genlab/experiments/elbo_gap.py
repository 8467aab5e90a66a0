r"""ELBO :math:`\le` importance-weighted bound :math:`\le \log p(x)`, where :math:`\log p(x)` is exact.

A VAE with a linear decoder and a Gaussian likelihood, :math:`t \mid z \sim \mathcal N(Wz + b,
\mathrm{diag}\,\sigma^2)` (in the standardised units :math:`t` of the data), has the exact
marginal :math:`t \sim \mathcal N(b, WW^\top + \mathrm{diag}\,\sigma^2)` (factor analysis, which
contains probabilistic PCA). Its diagonal-Gaussian encoder cannot represent the exact
(correlated) posterior, so the ELBO is strictly below :math:`\log p(x)`; the importance-weighted
bound :math:`\mathcal L_k` closes the gap as :math:`k` grows, :math:`\mathcal L_1 \le \mathcal L_k
\le \mathcal L_{k'} \le \log p(x)` for :math:`k \le k'` in expectation (Burda et al., 2016,
arXiv:1509.00519). Trained on ``digits`` with uniform dequantisation; every quantity is measured
on the same dequantised test set, with probabilistic PCA's exact likelihood for reference.
"""

from __future__ import annotations

import math

import torch

from genlab.api import fit
from genlab.data import dequantize, load
from genlab.experiments.base import Budget, ExperimentResult
from genlab.models import GenerativeModel
from genlab.report.figures import new_figure

NAME = "elbo-gap"
CLAIM = (
    "For a linear-Gaussian VAE, ELBO <= IW bound (k) <= exact log-likelihood, and the gap shrinks "
    "as k grows."
)
KS = {"smoke": (1, 10, 100), "full": (1, 3, 10, 30, 100, 300, 1000)}
EPOCHS = {"smoke": 60, "full": 300}
LATENT_DIM = 8
NOISE = 3.0  # standard errors allowed to Monte Carlo noise


@torch.no_grad()
def exact_log_prob(model: GenerativeModel, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` exact :math:`\\log p(x)` of a linear-decoder, Gaussian-likelihood VAE, in data units."""
    linear = model.decoder[0]  # MLP with no hidden layer: one nn.Linear
    w, b = linear.weight.double(), linear.bias.double()
    variances = (2 * model.likelihood.log_std.double()).exp()
    covariance = w @ w.T + torch.diag(variances)
    target = model.likelihood.target(x.flatten(1)).double()
    marginal = torch.distributions.MultivariateNormal(b, covariance)
    return marginal.log_prob(target) + model.likelihood.log_jacobian.double()


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    data = load("digits")
    vae = fit(
        "vae", data, seed=seed, architecture="linear", likelihood="gaussian",
        latent_dim=LATENT_DIM, epochs=EPOCHS[budget], patience=None, lr=3e-3,
    )  # fmt: skip
    pca = fit("pca", data, seed=seed, latent_dim=LATENT_DIM)
    x = dequantize(data.x_test, data.info, torch.Generator().manual_seed(seed))
    exact_each = exact_log_prob(vae, x)
    exact = float(exact_each.mean())
    bounds, errors = {}, {}
    with torch.no_grad():
        for k in KS[budget]:
            generator = torch.Generator().manual_seed(seed + k)
            bound = vae.log_prob(x, k=k, generator=generator).double()
            bounds[k] = float(bound.mean())
            # standard error of the mean gap over the test examples (the bound is a Monte Carlo
            # estimate: at large k the gap is within this noise of 0)
            errors[k] = float((exact_each - bound).std() / len(x) ** 0.5)
        ppca = float(pca.log_prob(x).mean())
    ks = list(bounds)
    gaps = [exact - bounds[k] for k in ks]
    se = [errors[k] for k in ks]
    ordered = all(
        b <= a + NOISE * math.hypot(ea, eb)
        for a, b, ea, eb in zip(gaps, gaps[1:], se, se[1:], strict=False)
    )
    non_negative = all(g >= -NOISE * e for g, e in zip(gaps, se, strict=True))
    holds = ordered and non_negative and gaps[0] - gaps[-1] > NOISE * math.hypot(se[0], se[-1])
    fig, (ax_bounds, ax_gap) = new_figure(2)
    ax_bounds.semilogx(ks, [bounds[k] for k in ks], "o-", color="#1f6fb4", label="IW bound L_k")
    ax_bounds.axhline(exact, color="black", label="exact log p(x) of the VAE")
    ax_bounds.axhline(ppca, color="#2e9e5b", ls="--", label="probabilistic PCA (exact)")
    ax_bounds.set(xlabel="importance samples k", ylabel="mean test log-likelihood (nats)")
    ax_bounds.legend(fontsize=7)
    ax_gap.errorbar(ks, gaps, yerr=[NOISE * e for e in se], fmt="o-", color="#d1495b", ms=3)
    ax_gap.set_xscale("log")
    ax_gap.set_yscale("symlog", linthresh=1e-3)
    ax_gap.axhline(0, color="grey", lw=0.8)
    ax_gap.set(
        xlabel="importance samples k",
        ylabel="log p(x) - L_k (nats)",
        title=f"the gap (bars: {NOISE:g} standard errors)",
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"within {NOISE:g} standard errors (over test examples), the gap log p - L_k is "
            "non-negative and never grows with k, and it shrinks from k=1 to the largest k"
        ),
        numbers={
            "k": ks,
            "bounds": [bounds[k] for k in ks],
            "exact_log_prob": exact,
            "gaps": gaps,
            "gap_standard_errors": se,
            "ppca_log_prob": ppca,
            "nats_per_dim_gap_k1": gaps[0] / data.info.n_features,
        },
        figure=fig,
    )
