"""SIR + MALA against exact targets: moments of a Gaussian, the CDF of a bimodal mixture."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from genlab.samplers import mala, sir


def test_mala_samples_a_correlated_gaussian():
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    precision = torch.linalg.inv(cov)

    def log_density(u):
        return -0.5 * ((u @ precision) * u).sum(1)

    g = torch.Generator().manual_seed(0)
    start = torch.full((4000, 2), 3.0, dtype=torch.float64)
    u, acceptance = mala(log_density, start, steps=300, burn_in=150, generator=g)
    assert 0.4 < float(acceptance.mean()) < 0.75
    np.testing.assert_allclose(u.mean(0).numpy(), [0, 0], atol=0.08)
    np.testing.assert_allclose(np.cov(u.numpy().T), cov.numpy(), atol=0.1)


def test_sir_then_mala_gets_the_weights_of_separated_modes():
    """Modes at -3 and +3 with weights 0.3 / 0.7: gradient steps alone could not reweigh them."""

    def log_density(u):
        x = u[:, 0]
        a = math.log(0.3) - 0.5 * ((x + 3) / 0.4) ** 2
        b = math.log(0.7) - 0.5 * ((x - 3) / 0.4) ** 2
        return torch.logaddexp(a, b)

    g = torch.Generator().manual_seed(1)
    loc, scale = torch.zeros(1, dtype=torch.float64), torch.full((1,), 5.0, dtype=torch.float64)
    start = sir(log_density, loc, scale, 2000, n_candidates=64, generator=g)
    u, _ = mala(log_density, start, steps=100, burn_in=50, generator=g)

    def cdf(x):
        return 0.3 * stats.norm.cdf(x, -3, 0.4) + 0.7 * stats.norm.cdf(x, 3, 0.4)

    assert stats.kstest(u[:, 0].numpy(), cdf).pvalue > 0.01
