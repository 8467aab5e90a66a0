"""Posterior sampling p(x | o) with diffusion models, against exact answers.

With the closed-form optimal denoisers of ``test_diffusion_samplers.py``: on correlated 2-D
Gaussian data the twisted SMC's draws under a linear Gaussian measurement have the closed-form
posterior's moments and its weights estimate p(o) without bias; on a 2-D mixture they match the
exact conditional (Kolmogorov-Smirnov) and DPS's do not; with g = 1 the filter is ancestral
sampling weighted by p(o | x); a class under the mixture's own classifier gives that class's
component. Then the family's ``sample_posterior`` on digits and its refusals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import genlab
from genlab.errors import ConfigError, DataError, UnsupportedCapability
from genlab.samplers import Function, Observation, classifier_guidance, gaussian_measurement
from genlab.samplers.diffusion import (
    Likelihood,
    ReverseProcess,
    ancestral_sample,
    draw_particle,
    observation_likelihood,
    posterior_by_dps,
    posterior_by_smc,
)
from tests.test_diffusion_samplers import (
    CENTRES,
    F64,
    STD,
    WEIGHTS,
    gaussian_process,
    mixture_process,
    model_gaussian,
)

A = torch.tensor([1.0, -0.5], dtype=F64)  # the measurement a^T x of the Gaussian case


def identity(u: torch.Tensor) -> torch.Tensor:
    return u


def smc(
    process: ReverseProcess, likelihood: Likelihood, filters: int, particles: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """Particles ``(F, K, 2)`` and log-weights of ``filters`` filters of row 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(filters * particles, 2, generator=g, dtype=F64)
    rows = torch.zeros(filters, dtype=torch.long)
    drawn, log_w = posterior_by_smc(
        process, likelihood, rows, x, particles=particles, generator=g, progress=False
    )
    return drawn, log_w, g


def linear_observation(y: float, sigma: float, dtype: torch.dtype = F64) -> Observation:
    """y = a.x + sigma eps, observed once."""
    a = A[:, None].to(dtype)
    return gaussian_measurement(
        Function((2,), lambda x: x @ a, "a.x"), torch.tensor([[y]], dtype=dtype), sigma
    )


def gaussian_posterior(
    process: ReverseProcess, y: float, sigma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The model's own data mean, and the mean, covariance and predictive variance of a.x of
    its closed-form posterior given :func:`linear_observation` (Gaussian conditioning)."""
    mean, cov = model_gaussian(process)  # the model's own data law, exactly
    predictive = float(A @ cov @ A) + sigma**2
    gain = cov @ A / predictive
    return mean, mean + gain * (y - float(A @ mean)), cov - torch.outer(gain, A @ cov), predictive


def test_smc_matches_the_closed_form_gaussian_posterior_and_estimates_the_evidence():
    process = gaussian_process(100)
    sigma, y = 0.3, 0.7
    likelihood = observation_likelihood(linear_observation(y, sigma), process.schedule, identity)
    filters = 2000
    drawn, log_w, g = smc(process, likelihood, filters, 16, seed=0)
    x = draw_particle(drawn, log_w, g)
    mean, post_mean, post_cov, predictive = gaussian_posterior(process, y, sigma)
    standard_error = (torch.diagonal(post_cov) / filters).sqrt()
    assert ((x.mean(0) - post_mean).abs() < 4 * standard_error).all(), (x.mean(0), post_mean)
    sample_cov = torch.cov(x.T)
    # the variance of a sample variance is 2 var^2 / (F - 1); covariances alike, here bounded so
    tolerance = 4 * math.sqrt(2 / filters) * torch.diagonal(post_cov).max()
    assert (sample_cov - post_cov).abs().max() < tolerance, (sample_cov, post_cov)
    # the weights: each filter's mean weight is an unbiased estimate of p(y)
    evidence = (torch.logsumexp(log_w, 1) - math.log(16)).exp()
    exact = stats.norm(float(A @ mean), math.sqrt(predictive)).pdf(y)
    assert abs(float(evidence.mean()) - exact) < 4 * float(evidence.std()) / math.sqrt(filters)


SIGMA, OBSERVED = 0.3, 0.8  # the mixture case: y = x_1 + SIGMA eps = OBSERVED


def mixture_conditional_cdf(values: np.ndarray) -> np.ndarray:
    """CDF of x_2 given y = x_1 + SIGMA eps = OBSERVED under the mixture (x_2 is independent of
    x_1 within a component, whose weight the measurement reweighs)."""
    centres, weights = CENTRES.numpy(), WEIGHTS.numpy()
    w = weights * stats.norm.pdf(OBSERVED, centres[:, 0], math.hypot(STD, SIGMA))
    w = w / w.sum()
    return sum(wk * stats.norm.cdf(values, c, STD) for wk, c in zip(w, centres[:, 1], strict=True))


def mixture_likelihood(process: ReverseProcess) -> Likelihood:
    first = Function((2,), lambda x: x[:, :1], "x_1")
    observation = gaussian_measurement(first, torch.tensor([[OBSERVED]], dtype=F64), SIGMA)
    return observation_likelihood(observation, process.schedule, identity)


def test_smc_matches_the_exact_conditional_on_a_mixture_and_dps_does_not():
    process = mixture_process(200)
    likelihood = mixture_likelihood(process)
    drawn, log_w, g = smc(process, likelihood, 1000, 16, seed=1)
    x = draw_particle(drawn, log_w, g)
    assert stats.kstest(x[:, 1].numpy(), mixture_conditional_cdf).pvalue > 0.01
    rows = torch.zeros(4000, dtype=torch.long)
    start = torch.randn(4000, 2, generator=g, dtype=F64)
    dps = posterior_by_dps(process, likelihood, rows, start, generator=g, progress=False)
    assert stats.kstest(dps[:, 1].numpy(), mixture_conditional_cdf).pvalue < 1e-6
    # DPS moves each draw toward y but never weighs the modes of x_2 by how well they explain
    # it: the upper mode (0.60 of the exact conditional) gets about 0.55
    upper = 1 - float(mixture_conditional_cdf(np.array([-0.25]))[0])
    assert float((dps[:, 1] > -0.25).double().mean()) < upper - 0.03


def test_without_twist_the_filter_is_ancestral_sampling_weighted_by_the_likelihood():
    """g = 1: the particles are the model's own ancestral samples (same random numbers) and
    each log-weight is log p(o | x) of its particle, the only factor left of the formula."""
    process = mixture_process(30)
    plain = Likelihood(mixture_likelihood(process).log_likelihood, None)
    filters, k = 5, 4
    drawn, log_w, _ = smc(process, plain, filters, k, seed=3)
    g = torch.Generator().manual_seed(3)
    start = torch.randn(filters * k, 2, generator=g, dtype=F64)
    ancestral, _ = ancestral_sample(process, start, generator=g)
    torch.testing.assert_close(drawn.view(-1, 2), ancestral)  # batched sums: ~1e-15 apart
    rows = torch.zeros(filters * k, dtype=torch.long)
    expected = plain.log_likelihood(ancestral, rows).view(filters, k)
    torch.testing.assert_close(log_w, expected)


def component_log_probs(x: torch.Tensor) -> torch.Tensor:
    """The mixture's exact classifier: log p(k | x), ``(N, 3)``."""
    log_joint = WEIGHTS.log() - 0.5 * torch.cdist(x, CENTRES).square() / STD**2
    return log_joint.log_softmax(1)


def test_classifier_guidance_draws_the_asked_component():
    """p(x) p(c = k | x) is the mixture's component k, N(c_k, STD^2 I)."""
    process = mixture_process(100)
    asked = 2  # the lightest component, 0.2 of the data
    observation = classifier_guidance(component_log_probs, torch.tensor([asked]))
    likelihood = observation_likelihood(observation, process.schedule, identity)
    drawn, log_w, g = smc(process, likelihood, 400, 8, seed=4)
    x = draw_particle(drawn, log_w, g)
    assert x.shape == (400, 2)
    prior, _ = ancestral_sample(process, torch.randn(400, 2, generator=g, dtype=F64), generator=g)
    share = (component_log_probs(x).argmax(1) == asked).double().mean()
    prior_share = (component_log_probs(prior).argmax(1) == asked).double().mean()
    assert float(prior_share) < 0.3 and float(share) > 0.9, (prior_share, share)
    assert (x.mean(0) - CENTRES[asked]).abs().max() < 4 * STD / math.sqrt(400) + 0.05


SMALL = {"timesteps": 20, "hidden": (32, 32), "embed": 16, "ddim_steps": 5, "particles": 4}


@pytest.fixture(scope="module")
def tiny(digits):
    """A few steps on digits: enough for shapes, units and guidance to be checked."""
    return genlab.fit("diffusion", digits, steps=40, val_fraction=0.0, seed=0, **SMALL)


def test_the_family_samples_posteriors_in_data_units(tiny, digits):
    """``genlab complete``'s route (SMC by default) and DPS: levels of the data, per example."""
    assert tiny.capabilities.posterior == "smc"
    x = digits.x_test[:3]
    smc_draws = genlab.api.complete(tiny, x, "downsample:2", 2, seed=0)
    operator = genlab.samplers.parse_operator("downsample:2", (1, 8, 8))
    observation = gaussian_measurement(operator, operator(x), 0.8)
    g = torch.Generator().manual_seed(0)
    dps_draws = tiny.sample_posterior(observation, 2, method="dps", generator=g)
    for draws in (smc_draws, dps_draws):
        assert draws.shape == (2, 3, 1, 8, 8)
        assert torch.equal(draws, draws.round()) and draws.min() >= 0 and draws.max() <= 16


def test_classifier_guidance_raises_the_asked_class(tiny, digits):
    """A fixed linear classifier of the pixels: guided draws of class 3 are more of class 3."""
    weight = torch.randn(10, 64, generator=torch.Generator().manual_seed(0)) / 8

    def log_probs(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ weight.T).log_softmax(1)

    classes = torch.full((20,), 3)
    g = torch.Generator().manual_seed(1)
    guided = tiny.sample_posterior(classifier_guidance(log_probs, classes), 1, generator=g)
    assert guided.shape == (1, 20, 1, 8, 8)
    plain = tiny.sample(20, generator=g)
    assert log_probs(guided[0])[:, 3].mean() > log_probs(plain)[:, 3].mean() + 0.5


def test_bad_requests_are_refused_clearly(tiny, digits):
    x = digits.x_test[:2]
    operator = genlab.samplers.parse_operator("downsample:2", (1, 8, 8))
    observation = gaussian_measurement(operator, operator(x), 1.0)
    with pytest.raises(ConfigError, match="method"):
        tiny.sample_posterior(observation, 1, method="gibbs")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="particles"):
        tiny.sample_posterior(observation, 1, particles=0)
    with pytest.raises(ConfigError, match="draws per example"):
        tiny.sample_posterior(observation, 0)
    with pytest.raises(UnsupportedCapability, match="context"):
        tiny.sample_posterior(observation, 1, context=torch.zeros(2, dtype=torch.long))
    wrong = Observation(2, lambda x, rows: x.flatten(1), "per-pixel scores")
    with pytest.raises(DataError, match="expected \\(8,\\)"):
        tiny.sample_posterior(wrong, 1)
    likelihood = observation_likelihood(observation, tiny.schedule, tiny.to_data)
    with pytest.raises(ConfigError, match="particles"):
        posterior_by_smc(
            tiny.process, likelihood, torch.zeros(2, dtype=torch.long), torch.randn(5, 1, 8, 8),
            particles=2,
        )  # fmt: skip


def test_a_twist_clipped_to_the_data_range_is_finite_far_outside_it_and_leaves_smc_exact():
    """An undertrained network's x0 can lie orders of magnitude outside the data at high noise
    (a 30-second compare run's draws of the downsampling posterior were all NaN):
    ``value_range`` scores the clipped x0, whose gradient is finite; and since the twists do
    not change the filter's target, the draws keep the closed-form posterior's mean."""
    process = gaussian_process(100)
    sigma, y = 0.3, 0.7
    observation = linear_observation(y, sigma, torch.float32)
    clipped = observation_likelihood(observation, process.schedule, identity, value_range=(-1, 1))
    wild = torch.full((1, 2), 1e20, requires_grad=True)
    log_g = clipped.log_twist(wild, torch.zeros(1, dtype=torch.long), 99)
    at_edge = clipped.log_twist(torch.ones(1, 2), torch.zeros(1, dtype=torch.long), 99)
    (gradient,) = torch.autograd.grad(log_g.sum(), wild)
    assert torch.isfinite(log_g).all() and torch.equal(log_g, at_edge)
    assert torch.equal(gradient, torch.zeros(1, 2))
    unclipped = observation_likelihood(observation, process.schedule, identity)
    wild_log_g = unclipped.log_twist(wild, torch.zeros(1, dtype=torch.long), 99)
    assert not torch.isfinite(wild_log_g).all()  # float32's square overflows: weights go NaN

    narrow = observation_likelihood(  # the data's std is 0.7 about (0.2, -0.3): clipped often
        linear_observation(y, sigma), process.schedule, identity, value_range=(-0.2, 0.2)
    )
    filters = 2000
    drawn, log_w, g = smc(process, narrow, filters, 16, seed=0)
    x = draw_particle(drawn, log_w, g)
    _, post_mean, post_cov, _ = gaussian_posterior(process, y, sigma)
    standard_error = (torch.diagonal(post_cov) / filters).sqrt()
    assert ((x.mean(0) - post_mean).abs() < 4 * standard_error).all(), (x.mean(0), post_mean)
