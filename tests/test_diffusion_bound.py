"""The variational bound of diffusion models against closed forms: each KL term, the prior term,
the discretised decoder (sums to 1, exact normal CDFs), and on 1-D Gaussian data, whose optimal
denoiser is known, the bound's expectation computed exactly by Gauss-Hermite quadrature: within
0.01 nats of the true log-likelihood at large T, never above it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats
from torch.distributions import Normal, kl_divergence

from genlab.nn.likelihoods import DiscretizedGaussian
from genlab.objectives import kl_normal
from genlab.samplers.diffusion import (
    Denoised,
    GaussianDecoder,
    LevelDecoder,
    ReverseProcess,
    bound_estimate,
    bound_term,
    bound_terms,
    prior_kl,
    snap_to_levels,
    stratified_timesteps,
    variational_bound,
)
from genlab.samplers.schedules import NoiseSchedule, make_betas

F64 = torch.float64


def test_kl_normal_is_the_closed_form_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    loc_q, loc_p = torch.randn(2, 50, generator=g, dtype=F64)
    log_q, log_p = torch.randn(2, 50, generator=g, dtype=F64)
    expected = kl_divergence(Normal(loc_q, log_q.exp()), Normal(loc_p, log_p.exp()))
    torch.testing.assert_close(kl_normal(loc_q, log_q, loc_p, log_p), expected)


def _schedule(name="cosine", total=1000):
    return NoiseSchedule(make_betas(name, total))


def test_each_kl_term_is_the_kl_between_the_forward_posterior_and_the_reverse_step():
    schedule = _schedule(total=200)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, generator=g, dtype=F64)
    t = torch.tensor([1, 2, 50, 100, 150, 199])
    xt = schedule.q_sample(x0, t, torch.randn(6, 3, generator=g, dtype=F64))
    prediction = Denoised(
        torch.randn(6, 3, generator=g, dtype=F64),
        torch.zeros(6, 3, dtype=F64),  # not read by the bound
        torch.randn(6, 3, generator=g, dtype=F64) - 6,
    )
    process = ReverseProcess(schedule, lambda *_: prediction, GaussianDecoder())
    terms = bound_term(process, x0, xt, t, prediction)
    # Ho et al. eq. 7 written out, and the reverse mean at the predicted x0
    a, b = schedule.alphas_cumprod[t][:, None], schedule.betas[t][:, None]
    a_prev = schedule.alphas_cumprod[t - 1][:, None]
    q_mean = (a_prev.sqrt() * b * x0 + (1 - b).sqrt() * (1 - a_prev) * xt) / (1 - a)
    q_var = (1 - a_prev) / (1 - a) * b
    p_mean = (a_prev.sqrt() * b * prediction.x0 + (1 - b).sqrt() * (1 - a_prev) * xt) / (1 - a)
    expected = kl_divergence(
        Normal(q_mean, q_var.sqrt()), Normal(p_mean, (0.5 * prediction.log_var).exp())
    ).sum(1)
    torch.testing.assert_close(terms, expected)


def test_the_prior_term_is_the_kl_to_the_standard_normal():
    schedule = _schedule("linear")
    x0 = torch.linspace(-1, 1, 8, dtype=F64).view(2, 4)
    a = schedule.alphas_cumprod[-1]
    expected = kl_divergence(Normal(a.sqrt() * x0, (1 - a).sqrt()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(prior_kl(schedule, x0), expected)


def test_the_discretised_decoders_gradient_is_exact_and_finite_at_the_end_bins():
    """The end bins' open side is taken at -inf inside the two-CDF formula: its gradient must
    be the numerical one, and finite even far in the tails."""
    g = torch.Generator().manual_seed(0)
    levels = 17
    value = torch.tensor([0.0, 16.0, 5.0, 0.0, 16.0, 8.0], dtype=F64)
    loc = (0.8 * torch.randn(6, generator=g, dtype=F64)).requires_grad_()
    log_scale = (torch.rand(6, generator=g, dtype=F64) - 2.0).requires_grad_()
    torch.autograd.gradcheck(
        lambda m, s: DiscretizedGaussian(m, s, levels).log_prob(value), (loc, log_scale)
    )
    far_loc = torch.tensor([3.0, -3.0, 3.0, -3.0], dtype=F64, requires_grad=True)
    tiny = torch.full((4,), -9.0, dtype=F64, requires_grad=True)
    ends = torch.tensor([0.0, 16.0, 16.0, 0.0], dtype=F64)
    log_p = DiscretizedGaussian(far_loc, tiny, levels).log_prob(ends)
    assert torch.isfinite(log_p).all()
    assert all(
        torch.isfinite(grad).all() for grad in torch.autograd.grad(log_p.sum(), (far_loc, tiny))
    )


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_the_discretised_decoder_sums_to_one_with_exact_normal_cdfs(levels):
    g = torch.Generator().manual_seed(levels)
    loc = torch.cat([torch.randn(200, generator=g, dtype=F64), torch.tensor([-3.0, 3.0, 0.0])])
    log_scale = torch.cat(
        [torch.rand(200, generator=g, dtype=F64) * 12 - 10, torch.tensor([-12.0, 1.0, 2.0])]
    )
    d = DiscretizedGaussian(loc, log_scale, levels)
    torch.testing.assert_close(d.probs().sum(-1), torch.ones(len(loc), dtype=F64))
    # against scipy's exact log CDFs, far into the tails (where the tanh approximation fails)
    j = torch.randint(levels, (len(loc),), generator=g).to(F64)
    y = 2 * j / (levels - 1) - 1
    h = 1 / (levels - 1)
    upper = ((y + h - loc) / log_scale.exp()).numpy()
    lower = ((y - h - loc) / log_scale.exp()).numpy()
    first, last = j.numpy() == 0, j.numpy() == levels - 1
    flip = (upper + lower) / 2 > 0  # subtract the two CDFs in the tail where they are small
    high = np.where(flip, -lower, upper)
    low = np.where(flip, -upper, lower)
    middle = special.ndtr(high) - special.ndtr(low)
    expected = np.where(first, special.ndtr(upper), np.where(last, special.ndtr(-lower), middle))
    representable = expected > 1e-250
    np.testing.assert_allclose(
        d.log_prob(j).exp().numpy()[representable], expected[representable], rtol=1e-6
    )
    # sampling draws each level with its probability
    counts = torch.bincount(
        DiscretizedGaussian(torch.tensor([0.1]).expand(20000), torch.tensor(-1.0), levels)
        .sample_with(torch.Generator().manual_seed(0))
        .long(),
        minlength=levels,
    )
    probs = DiscretizedGaussian(torch.tensor([0.1], dtype=F64), torch.tensor(-1.0), levels)
    expected = probs.probs()[0].numpy() * 20000
    cells = expected >= 5  # the rarest levels pooled into one cell
    observed, expected = counts.numpy()[cells], expected[cells]
    if not cells.all():
        observed = np.append(observed, counts.numpy()[~cells].sum())
        expected = np.append(expected, 20000 - expected.sum())
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3


def test_the_level_decoder_reads_every_value_of_a_bin_as_its_level():
    decoder = LevelDecoder(17)
    mean, log_var = torch.zeros(3, 1), torch.full((3, 1), -4.0)
    centre = torch.full((3, 1), decoder.position(torch.tensor(5.0)).item())
    inside = centre + torch.tensor([[-0.06], [0.0], [0.06]])  # half a bin is 1/16
    torch.testing.assert_close(
        decoder.coordinate_log_prob(mean, log_var, inside),
        decoder.coordinate_log_prob(mean, log_var, centre),
    )


@pytest.mark.parametrize(
    ("std_in_levels", "centre"),
    [(0.08, 0.0), (0.30, 0.0), (0.47, 0.0), (2.3, 0.0), (10.5, 0.0), (0.30, 0.97), (0.30, -1.1)],
)
def test_snapping_is_the_posterior_mean_over_every_level(std_in_levels, centre):
    """Brute force over all 256 levels: with x_t / sqrt(alpha-bar) ~ N(x_0, e^-lambda) and the
    belief x_0 ~ N(x0-hat, tau^2), p(y_j | x_t) is proportional to the product of the two
    Gaussian densities at y_j; snapping's mean over nine levels is it wherever the posterior's
    width s is at most half a level, and so is its continuous mean for s of two levels and more
    away from the ends (the band in between is a blend, not tested). At the ends of the range
    (centre 0.97, -1.1) the window slides inward and stays exact."""
    levels, n, step = 256, 400, 0.8
    spacing = 2 / (levels - 1)
    schedule = NoiseSchedule(make_betas("log_snr", 1000, log_snr=(12.0, -8.0)))
    generator = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (n,), generator=generator)
    x0 = torch.rand(n, 1, generator=generator, dtype=F64) * 0.2 - 0.1 + centre
    log_snr = schedule.log_snr[t].view(n, 1)
    # the tau^2 that gives s = std_in_levels * spacing: s^2 = 1 / (e^lambda + 1 / tau^2)
    precision = (std_in_levels * spacing) ** -2 - log_snr.exp()
    keep = (precision > 0)[:, 0]
    t, x0, log_snr, precision = t[keep], x0[keep], log_snr[keep], precision[keep]
    alpha_bar = schedule.alphas_cumprod[t].view(-1, 1)
    truth = x0 + step * spacing * torch.randn(x0.shape, generator=generator, dtype=F64)
    xt = alpha_bar.sqrt() * truth + (1 - alpha_bar).sqrt() * torch.randn(
        x0.shape, generator=generator, dtype=F64
    )
    log_tau2 = -precision.log()
    grid = torch.linspace(-1, 1, levels, dtype=F64)
    log_p = Normal(xt / alpha_bar.sqrt(), (-log_snr / 2).exp()).log_prob(grid) + Normal(
        x0, (log_tau2 / 2).exp()
    ).log_prob(grid)
    expected = (torch.softmax(log_p, 1) * grid).sum(1, keepdim=True)
    snapped = snap_to_levels(schedule, xt, t, x0, log_tau2, levels)
    assert len(t) > 100
    torch.testing.assert_close(snapped, expected, rtol=0, atol=1e-9)


# ----------------------------------------------------------------- 1-D Gaussian data, exactly

M, S = 0.3, 0.2  # data ~ N(M, S^2) in the model's units


def optimal_process(schedule: NoiseSchedule, variance: str) -> ReverseProcess:
    """The reverse process with the optimal denoiser E[x_0 | x_t] of Gaussian data and the
    variance ``"fixed_large"`` (beta_t), ``"fixed_small"`` or ``"optimal"`` (the exact
    conditional variance beta-tilde + c0^2 Var[x_0 | x_t], reached by learned_range)."""

    def denoise(xt, t):
        a = schedule.at(schedule.alphas_cumprod, t, xt)
        gain = a.sqrt() * S**2 / (a * S**2 + 1 - a)
        x0 = M + gain * (xt - a.sqrt() * M)
        posterior_var = S**2 * (1 - a) / (a * S**2 + 1 - a)  # Var[x_0 | x_t]
        if variance == "fixed_large":
            log_var = schedule.at(schedule.betas.log(), t, xt)
        elif variance == "fixed_small":
            log_var = schedule.at(schedule.posterior_log_variance, t, xt)
        else:
            c0 = schedule.at(schedule.posterior_coef_x0, t, xt)
            small = schedule.at(schedule.posterior_variance, t, xt)
            optimal = torch.where(t.view_as(a) == 0, posterior_var, small + c0**2 * posterior_var)
            # learned_range's interpolation f log beta + (1 - f) log beta-tilde reaches it
            log_small = schedule.at(schedule.posterior_log_variance, t, xt)
            log_large = schedule.at(schedule.betas.log(), t, xt)
            fraction = (optimal.log() - log_small) / (log_large - log_small)
            assert bool(((fraction >= -1e-9) & (fraction <= 1 + 1e-9)).all())
            log_var = schedule.learned_log_variance(fraction.expand_as(xt), t)
        return Denoised(x0, schedule.epsilon_from_x0(xt, t, x0), log_var)

    return ReverseProcess(schedule, denoise, GaussianDecoder())


def expected_bound_gap(schedule: NoiseSchedule, variance: str, nodes: int = 8) -> float:
    """E[bound] - E[-log p(x_0)] in nats, the expectation over x_0 and each x_t by Gauss-Hermite
    quadrature in both (every term is quadratic in them, so a few nodes are exact)."""
    points, weights = np.polynomial.hermite_e.hermegauss(nodes)  # for N(0, 1)
    weights = weights / weights.sum()
    a = torch.tensor(points, dtype=F64)
    w = torch.tensor(weights, dtype=F64)
    x0 = (M + S * a).repeat_interleave(nodes).view(-1, 1)  # (nodes^2, 1): x_0 node i, noise j
    eps = a.repeat(nodes).view(-1, 1)
    weight = (w[:, None] * w[None, :]).reshape(-1)
    process = optimal_process(schedule, variance)
    total = prior_kl(schedule, x0)
    for t in range(schedule.total):
        steps = torch.full((len(x0),), t)
        xt = schedule.q_sample(x0, steps, eps)
        total = total + bound_term(process, x0, xt, steps, process.denoise(xt, steps))
    true_nll = -Normal(M, S).log_prob(x0[:, 0])
    return float((weight * (total - true_nll)).sum())


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_the_bound_of_the_optimal_denoiser_is_within_a_hundredth_of_a_nat_at_large_t(name):
    gap_large = expected_bound_gap(_schedule(name, 1000), "fixed_large")
    assert 0 <= gap_large < 0.01  # never above the true log-likelihood, and close to it
    # it closes as T grows: O(1/T)
    gap_few = expected_bound_gap(_schedule(name, 100), "fixed_large")
    assert gap_few > 5 * gap_large
    # with the variances learned_range can reach, the bound is exact up to the prior term
    gap_optimal = expected_bound_gap(_schedule(name, 100), "optimal")
    assert 0 <= gap_optimal < 1e-4
    # beta-tilde is the wrong variance for data broad against the noise: Ho et al.'s remark
    assert expected_bound_gap(_schedule(name, 100), "fixed_small") > 0.3


def test_the_bound_is_the_prior_term_plus_each_term_drawn_alike():
    """``bound_terms`` gives every step's term, drawn as ``variational_bound`` draws them (the
    same generator, shared noise or not): the bound is exactly the prior term plus their sum,
    and each term is ``bound_term`` at its own draw of x_t."""
    schedule = _schedule("linear", 30)
    process = optimal_process(schedule, "fixed_large")
    x0 = torch.linspace(-0.5, 1.0, 5, dtype=F64).view(5, 1)
    for shared in (False, True):
        terms = bound_terms(
            process, x0, generator=torch.Generator().manual_seed(3), shared_noise=shared
        )
        bound = variational_bound(
            process, x0, generator=torch.Generator().manual_seed(3), shared_noise=shared
        )
        assert terms.shape == (30, 5)
        torch.testing.assert_close(bound, prior_kl(schedule, x0) + terms.sum(0))
    noise = torch.randn(30, 5, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    step = torch.full((5,), 17)
    xt = schedule.q_sample(x0, step, noise[17])
    expected = bound_term(process, x0, xt, step, process.denoise(xt, step))
    terms = bound_terms(process, x0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(terms[17], expected)


def test_the_sampled_bound_and_its_cheap_estimate_are_unbiased():
    schedule = _schedule("linear", 200)
    process = optimal_process(schedule, "fixed_large")
    g = torch.Generator().manual_seed(3)
    x0 = M + S * torch.randn(4000, 1, generator=g, dtype=F64)
    exact = expected_bound_gap(schedule, "fixed_large")
    true_nll = -Normal(M, S).log_prob(x0[:, 0])
    full = variational_bound(process, x0, generator=g) - true_nll
    cheap = bound_estimate(process, x0, 8, generator=g) - true_nll
    for values in (full, cheap):
        error = float(values.mean()) - exact
        assert abs(error) < 4 * float(values.std()) / math.sqrt(len(values))
    assert float(cheap.std()) > float(full.std())  # the price of 8 terms instead of 200
    # common random numbers: an example's value does not depend on its batch
    shared = variational_bound(
        process, x0[:3000], shared_noise=True, generator=torch.Generator().manual_seed(0)
    )
    again = variational_bound(
        process, x0[1:3], shared_noise=True, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(shared[1:3], again)


def test_stratified_timesteps_cover_every_stratum_once():
    t = stratified_timesteps(1000, 500, 8, torch.Generator().manual_seed(0), torch.device("cpu"))
    strata = torch.div(t * 8, 1000, rounding_mode="floor")
    assert torch.equal(strata, torch.arange(8).expand(500, 8))
