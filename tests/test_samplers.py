"""The shared completion samplers on their own, against closed-form conditionals.

A linear-Gaussian model, :math:`z \\sim \\mathcal N(0, I_K)`, :math:`x \\mid z \\sim \\mathcal N(Wz +
\\mu, \\sigma^2 I)`, has the Gaussian marginal :math:`\\mathcal N(\\mu, WW^\\top + \\sigma^2 I)`, so
:math:`p(x_u \\mid x_o)` is known exactly (:func:`gaussian_conditional`). Both latent samplers
(SIR + MALA on the code, Metropolis-within-Gibbs) and the density sampler (SIR + MALA on the
unobserved coordinates) must reproduce its mean and covariance, whatever proposal they are given.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.errors import DataError
from genlab.samplers import (
    ExplicitDensity,
    LatentVariableModel,
    complete_from_density,
    complete_from_latent,
    gaussian_conditional,
)

D, K, SIGMA = 4, 2, 0.5
CHAINS = 4000


@pytest.fixture(scope="module")
def linear_gaussian():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(D, K, generator=g, dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    cov = weight @ weight.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    return weight, mean, cov


def latent_pieces(weight, mean, proposal_scale: float) -> LatentVariableModel:
    """The linear-Gaussian model's pieces; the proposal is its exact posterior :math:`p(z \\mid x)`
    at the current completion, with the scale deliberately widened by ``proposal_scale``."""
    m = weight.T @ weight + SIGMA**2 * torch.eye(K, dtype=torch.float64)
    gain = torch.linalg.solve(m, weight.T)  # M^{-1} W^T
    posterior_sd = (SIGMA**2 * torch.linalg.inv(m)).diagonal().sqrt()

    def draw(params, generator):
        noise = torch.randn(params.shape, generator=generator, dtype=params.dtype)
        return params + SIGMA * noise

    def proposal(x):
        loc = (x - mean) @ gain.T
        return loc, (proposal_scale * posterior_sd).expand_as(loc)

    return LatentVariableModel(
        start=mean.clone(),
        decode=lambda z: z @ weight.T + mean,
        coordinate_log_prob=lambda params, x: torch.distributions.Normal(params, SIGMA).log_prob(
            x
        ),
        draw=draw,
        proposal=proposal,
    )


def assert_matches_conditional(draws, x, observed, mean, cov):
    """Sample mean within 4 standard errors, covariance within 10%, marginal KS p > 0.001."""
    exact_mean, exact_cov = gaussian_conditional(mean, cov, x, observed)
    u = draws[:, 0, ~observed].double()
    se = (exact_cov.diagonal() / len(u)).sqrt()
    assert (u.mean(0) - exact_mean[0]).abs().le(4 * se).all(), (u.mean(0), exact_mean[0])
    np.testing.assert_allclose(np.cov(u.numpy().T), exact_cov.numpy(), rtol=0.1, atol=0.02)
    sd = float(exact_cov[0, 0].sqrt())
    result = stats.kstest(u[:, 0].numpy(), stats.norm(float(exact_mean[0, 0]), sd).cdf)
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("method", ["mala", "gibbs"])
def test_latent_samplers_draw_the_exact_gaussian_conditional(linear_gaussian, method):
    weight, mean, cov = linear_gaussian
    x = torch.tensor([[2.0, -1.0, 0.0, 0.0]], dtype=torch.float64)  # x_2, x_3 unobserved
    observed = torch.tensor([True, True, False, False])
    draws = complete_from_latent(
        lambda context: latent_pieces(weight, mean, proposal_scale=1.5),
        x,
        observed,
        CHAINS,
        method=method,
        steps=200 if method == "mala" else 400,
        n_candidates=16,
        generator=torch.Generator().manual_seed(1),
    )
    assert draws.shape == (CHAINS, 1, D)
    assert torch.equal(draws[:, 0, observed], x[:, observed].expand(CHAINS, -1))
    assert_matches_conditional(draws, x, observed, mean, cov)


def test_density_sampler_draws_the_exact_gaussian_conditional(linear_gaussian):
    weight, mean, cov = linear_gaussian
    precision = torch.linalg.inv(cov)

    def log_density(h):
        diff = h.double() - mean
        return -0.5 * ((diff @ precision) * diff).sum(1)

    # a wrong Gaussian approximation (shifted, inflated): it may only cost efficiency
    model = ExplicitDensity(
        family="gaussian",
        transform=lambda x: x,
        inverse=lambda h: h,
        log_density=log_density,
        in_support=torch.isfinite,
        mean=mean + 1.0,
        cov=3.0 * cov,
    )
    x = torch.tensor([[0.0, 0.0, 1.5, 2.0]], dtype=torch.float64)
    observed = torch.tensor([False, True, True, True])
    mask = observed.clone()
    mask[1] = False  # two unobserved coordinates, the first and second
    draws = complete_from_density(
        lambda context: model, x, mask, CHAINS, n_candidates=16, steps=200,
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert_matches_conditional(draws, x, mask, mean, cov)


def test_density_sampler_refuses_observed_values_off_the_support():
    model = ExplicitDensity(
        family="toy",
        transform=lambda x: x,
        inverse=lambda h: h,
        log_density=lambda h: -0.5 * h.square().sum(1),
        in_support=torch.isfinite,
        mean=torch.zeros(2, dtype=torch.float64),
        cov=torch.eye(2, dtype=torch.float64),
    )
    x = torch.tensor([[math.inf, 0.0]])
    with pytest.raises(DataError, match="toy: observed values .* support"):
        complete_from_density(
            lambda context: model, x, torch.tensor([True, False]), 2, n_candidates=2, steps=2
        )


def test_latent_sampler_options_are_checked(linear_gaussian):
    weight, mean, _ = linear_gaussian
    pieces = lambda context: latent_pieces(weight, mean, 1.0)  # noqa: E731
    x = torch.zeros(1, D, dtype=torch.float64)
    mask = torch.tensor([True, False, True, False])
    with pytest.raises(Exception, match="sampler must be one of"):
        complete_from_latent(pieces, x, mask, 2, method="hmc", steps=2, n_candidates=2)
    with pytest.raises(Exception, match="steps must be >= 1"):
        complete_from_latent(pieces, x, mask, 2, steps=0, n_candidates=2)
