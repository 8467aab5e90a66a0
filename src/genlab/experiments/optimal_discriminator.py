r"""The optimal discriminator is :math:`D^* = p / (p + q)`, and its value is :math:`2\,\mathrm{JS} - \log 4`.

For :math:`V(D) = \mathbb E_p \log D(x) + \mathbb E_q \log(1 - D(x))`, the maximiser is
:math:`D^*(x) = p(x) / (p(x) + q(x))` and
:math:`V(D^*) = 2\,\mathrm{JS}(p, q) - \log 4` (Goodfellow et al., 2014, arXiv:1406.2661,
Proposition 1 and Theorem 1). We train a small MLP discriminator by logistic regression on fresh
samples of two known 1-D Gaussian mixtures and compare it with :math:`D^*` on a grid, and its
value (Monte Carlo on fresh samples) with the Jensen-Shannon divergence computed by quadrature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genlab.experiments.base import Budget, ExperimentResult
from genlab.nn import MLP
from genlab.optim import adam
from genlab.report.figures import new_figure

NAME = "optimal-discriminator"
CLAIM = (
    "A discriminator trained to optimality between p and q approaches p/(p+q), and its value "
    "approaches 2 JS(p, q) - log 4."
)
P = ((0.5, -2.0, 0.5), (0.5, 1.0, 0.7))  # (weight, mean, std) of each component
Q = ((0.3, -1.0, 0.6), (0.7, 2.0, 0.5))
STEPS = {"smoke": 1000, "full": 6000}
TOLERANCE = {"smoke": 0.03, "full": 0.01}
BATCH = 512


def mixture_log_prob(
    x: torch.Tensor, components: tuple[tuple[float, float, float], ...]
) -> torch.Tensor:
    r""":math:`\log \sum_k w_k \mathcal N(x; m_k, s_k^2)`."""
    terms = [
        math.log(w) - 0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
        for w, m, s in components
    ]
    return torch.logsumexp(torch.stack(terms), dim=0)


def mixture_sample(n: int, components: tuple, generator: torch.Generator) -> torch.Tensor:
    weights = torch.tensor([c[0] for c in components])
    which = torch.multinomial(weights, n, replacement=True, generator=generator)
    means = torch.tensor([c[1] for c in components])[which]
    stds = torch.tensor([c[2] for c in components])[which]
    return (means + stds * torch.randn(n, generator=generator)).unsqueeze(1)


def jensen_shannon_by_quadrature(grid: torch.Tensor) -> float:
    r""":math:`\mathrm{JS} = \frac12 \int p \log\frac{2p}{p+q} + \frac12 \int q \log\frac{2q}{p+q}`."""
    log_p, log_q = mixture_log_prob(grid, P).double(), mixture_log_prob(grid, Q).double()
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    dx = float(grid[1] - grid[0])
    kl_pm = (log_p.exp() * (log_p - log_m)).sum() * dx
    kl_qm = (log_q.exp() * (log_q - log_m)).sum() * dx
    return float(0.5 * (kl_pm + kl_qm))


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        discriminator = MLP(1, 1, hidden=(64, 64), activation="tanh")
    optimizer = adam(discriminator.parameters(), lr=1e-3)
    for _ in range(STEPS[budget]):
        real, fake = mixture_sample(BATCH, P, generator), mixture_sample(BATCH, Q, generator)
        logits = discriminator(torch.cat([real, fake]))
        labels = torch.cat([torch.ones(BATCH, 1), torch.zeros(BATCH, 1)])
        loss = F.binary_cross_entropy_with_logits(logits, labels)  # = -V(D) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    grid = torch.linspace(-6, 6, 4001)
    with torch.no_grad():
        learned = torch.sigmoid(discriminator(grid.unsqueeze(1))).squeeze(1)
        log_p, log_q = mixture_log_prob(grid, P), mixture_log_prob(grid, Q)
        optimal = torch.sigmoid(log_p - log_q)
        mass = 0.5 * (log_p.exp() + log_q.exp())
        weighted_error = float(((learned - optimal).abs() * mass).sum() / mass.sum())
        n = 200_000
        real, fake = mixture_sample(n, P, generator), mixture_sample(n, Q, generator)
        value = float(
            F.logsigmoid(discriminator(real)).mean() + F.logsigmoid(-discriminator(fake)).mean()
        )
    js = jensen_shannon_by_quadrature(grid)
    optimal_value = 2 * js - math.log(4)
    tolerance = TOLERANCE[budget]
    fig, (ax_d, ax_density) = new_figure(2)
    ax_density.plot(grid, log_p.exp(), color="#1f6fb4", label="p")
    ax_density.plot(grid, log_q.exp(), color="#d1495b", label="q")
    ax_density.set(title="the two distributions", xlabel="x")
    ax_density.legend(fontsize=8)
    ax_d.plot(grid, optimal, color="black", lw=2, label="p / (p + q)")
    ax_d.plot(grid, learned, color="#2e9e5b", ls="--", lw=1.5, label="trained D")
    ax_d.set(title=f"V(D) = {value:.4f},  2 JS - log 4 = {optimal_value:.4f}", xlabel="x")
    ax_d.legend(fontsize=8)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=abs(value - optimal_value) < tolerance and weighted_error < 0.05,
        criterion=(
            f"|V(D) - (2 JS - log 4)| < {tolerance} and the (p+q)/2-weighted mean |D - D*| < 0.05"
        ),
        numbers={
            "value": value,
            "two_js_minus_log4": optimal_value,
            "js": js,
            "weighted_mean_abs_error": weighted_error,
        },
        figure=fig,
    )
