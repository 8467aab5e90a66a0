"""The diffusion samplers with a known denoiser: on a 2-D Gaussian mixture (whose optimal
denoiser is closed-form) ancestral samples follow the mixture, SMC completion matches the exact
conditional and replacement does not; DDIM inversion of a trained model returns its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import genlab
from genlab.samplers.diffusion import (
    Denoised,
    GaussianDecoder,
    ReverseProcess,
    ancestral_sample,
    complete_by_replacement,
    complete_by_smc,
    ddim_invert,
    ddim_sample,
)
from genlab.samplers.schedules import NoiseSchedule, make_betas
from genlab.samplers.smc import effective_sample_size, systematic_resample

F64 = torch.float64
CENTRES = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.5]], dtype=F64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
STD = 0.3
OBSERVED_X = 0.8  # condition on the first coordinate; the second is bimodal given it


def mixture_process(total: int) -> ReverseProcess:
    r"""The reverse process of the mixture's optimal denoiser: :math:`\hat x_0 = E[x_0 \mid x_t]`
    and per coordinate the moment-matched variance :math:`\tilde\beta_t + c_0^2 \mathrm{Var}[x_0
    \mid x_t]` (the best Gaussian step), so the model is the mixture up to the Gaussian steps."""
    schedule = NoiseSchedule(make_betas("linear", total))

    def denoise(xt, t):
        a = schedule.at(schedule.alphas_cumprod, t, xt)  # (N, 1)
        spread = a * STD**2 + 1 - a
        diff = xt[:, None, :] - a.sqrt()[:, None] * CENTRES  # (N, K, 2)
        log_r = WEIGHTS.log() - 0.5 * diff.square().sum(-1) / spread
        r = torch.softmax(log_r, 1)[..., None]  # (N, K, 1)
        means = CENTRES + (a.sqrt() * STD**2 / spread)[:, None] * diff  # E[x0 | x_t, k]
        var_k = STD**2 * (1 - a) / spread  # Var[x0 | x_t, k], (N, 1)
        x0 = (r * means).sum(1)
        var = var_k + (r * means.square()).sum(1) - x0.square()
        small = schedule.at(schedule.posterior_variance, t, xt)
        c0 = schedule.at(schedule.posterior_coef_x0, t, xt)
        step_var = torch.where(t[:, None] == 0, var, small + c0**2 * var)
        return Denoised(x0, schedule.epsilon_from_x0(xt, t, x0), step_var.clamp_min(1e-12).log())

    return ReverseProcess(schedule, denoise, GaussianDecoder())


def exact_conditional_cdf(values: np.ndarray) -> np.ndarray:
    """CDF of x_2 given x_1 = OBSERVED_X under the mixture."""
    centres, weights = CENTRES.numpy(), WEIGHTS.numpy()
    w = weights * stats.norm.pdf(OBSERVED_X, centres[:, 0], STD)
    w = w / w.sum()
    return sum(wk * stats.norm.cdf(values, c, STD) for wk, c in zip(w, centres[:, 1], strict=True))


def test_ancestral_samples_of_the_optimal_denoiser_follow_the_mixture():
    process = mixture_process(500)
    g = torch.Generator().manual_seed(0)
    samples, kept = ancestral_sample(
        process, torch.randn(4000, 2, generator=g, dtype=F64), generator=g, keep=(499, 0)
    )
    assert set(kept) == {0, 499}
    nearest = torch.cdist(samples, CENTRES).argmin(1)
    counts = torch.bincount(nearest, minlength=3).numpy()
    assert stats.chisquare(counts, WEIGHTS.numpy() * 4000).pvalue > 0.01
    spread = (samples - CENTRES[nearest]).std(0)
    assert torch.allclose(spread, torch.full((2,), STD, dtype=F64), atol=0.02)


@pytest.mark.slow
def test_smc_completion_matches_the_exact_conditional_and_replacement_does_not():
    process = mixture_process(200)
    observed = torch.tensor([True, False])
    y = torch.tensor([[OBSERVED_X, 0.0]], dtype=F64).expand(2000, 2)
    g = torch.Generator().manual_seed(1)
    smc = complete_by_smc(process, y, observed, particles=32, generator=g, progress=False)
    assert torch.equal(smc[:, 0], y[:, 0])  # the observed coordinate is kept
    result = stats.kstest(smc[:, 1].numpy(), exact_conditional_cdf)
    assert result.pvalue > 0.01, result
    replaced = complete_by_replacement(process, y, observed, generator=g, progress=False)
    biased = stats.kstest(replaced[:, 1].numpy(), exact_conditional_cdf)
    assert biased.pvalue < 1e-6, biased
    # replacement gets the weights of the two modes of x_2 wrong (0.6 for the upper one)
    assert float((replaced[:, 1] > -0.25).double().mean()) < 0.5


def gaussian_process(total: int) -> ReverseProcess:
    """Correlated 2-D Gaussian data N(MEAN, COV) with its optimal denoiser and moment-matched
    variances: every step is linear-Gaussian, so the model's own joint is Gaussian."""
    schedule = NoiseSchedule(make_betas("linear", total))
    eye = torch.eye(2, dtype=F64)

    def denoise(xt, t):
        a = schedule.at(schedule.alphas_cumprod, t, xt)[:, :, None]  # (N, 1, 1)
        spread = a * COV + (1 - a) * eye
        gain = torch.linalg.solve(spread, a.sqrt() * COV)  # symmetric: x0 = mean + gain r
        x0 = MEAN + ((xt - a[:, :, 0].sqrt() * MEAN)[:, None] @ gain)[:, 0]
        var = torch.diagonal(COV - a * COV @ torch.linalg.solve(spread, COV), dim1=1, dim2=2)
        small = schedule.at(schedule.posterior_variance, t, xt)
        c0 = schedule.at(schedule.posterior_coef_x0, t, xt)
        step_var = torch.where(t[:, None] == 0, var, small + c0**2 * var)
        return Denoised(x0, schedule.epsilon_from_x0(xt, t, x0), step_var.log())

    return ReverseProcess(schedule, denoise, GaussianDecoder())


MEAN = torch.tensor([0.2, -0.3], dtype=F64)
COV = torch.tensor([[0.5, 0.4], [0.4, 0.5]], dtype=F64)


def model_gaussian(process: ReverseProcess) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the model's data, propagated exactly down the linear chain."""
    mean, cov = torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    basis = torch.cat([torch.zeros(1, 2, dtype=F64), torch.eye(2, dtype=F64)])
    for step in range(process.total - 1, -1, -1):
        t = torch.full((3,), step)
        step_mean, log_var = process.transition(basis, t, process.denoise(basis, t))
        linear = (step_mean[1:] - step_mean[0]).T  # x_{t-1} = linear x_t + step_mean[0] + noise
        mean = linear @ mean + step_mean[0]
        cov = linear @ cov @ linear.T + torch.diag(log_var[0].exp())
    return mean, cov


def test_smc_targets_the_models_own_conditional_on_gaussian_data():
    process = gaussian_process(100)
    mean, cov = model_gaussian(process)
    observed_value = 0.9
    conditional = stats.norm(
        float(mean[1] + cov[1, 0] / cov[0, 0] * (observed_value - mean[0])),
        float(cov[1, 1] - cov[1, 0] ** 2 / cov[0, 0]) ** 0.5,
    )
    y = torch.tensor([[observed_value, 0.0]], dtype=F64).expand(2000, 2)
    observed = torch.tensor([True, False])
    g = torch.Generator().manual_seed(2)
    smc = complete_by_smc(process, y, observed, particles=16, generator=g, progress=False)
    assert stats.kstest(smc[:, 1].numpy(), conditional.cdf).pvalue > 0.01
    replaced = complete_by_replacement(process, y, observed, generator=g, progress=False)
    assert stats.kstest(replaced[:, 1].numpy(), conditional.cdf).pvalue < 1e-6


def test_smc_pieces_behave_as_defined():
    """ESS and systematic resampling as their definitions say; one particle runs too."""
    log_w = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]))
    torch.testing.assert_close(
        effective_sample_size(log_w), torch.tensor([1 / (0.49 + 0.03), 4.0])
    )
    g = torch.Generator().manual_seed(0)
    picks = torch.cat([systematic_resample(log_w[:1], g) for _ in range(2000)])
    share = (picks == 0).double().mean()
    assert abs(float(share) - 0.7) < 0.01  # systematic: 2 or 3 copies of 4, 0.7 on average
    assert torch.equal(systematic_resample(log_w[1:], g), torch.arange(4)[None])
    process = mixture_process(50)
    y = torch.tensor([[OBSERVED_X, 0.0]], dtype=F64).expand(8, 2)
    out = complete_by_smc(process, y, torch.tensor([True, False]), particles=1, generator=g)
    assert out.shape == (8, 2) and torch.isfinite(out).all()


def test_deterministic_ddim_is_invertible_on_the_mixture():
    process = mixture_process(200)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    data = ddim_sample(process, x, 200, progress=False)
    errors = [
        float((ddim_invert(process, data, 200, iterations=k, progress=False) - x).abs().max())
        for k in (0, 1, 3)
    ]
    assert errors[0] > 1e-2  # plain DDIM inversion is only first-order accurate
    assert errors[1] < errors[0] / 10 and errors[2] < 1e-5  # the fixed point is exact


def test_ddim_inversion_of_a_trained_model_returns_the_input(digits):
    """DDIM inversion then decoding returns the input to 1e-3 (float64, S = T, a trained model)."""
    model = genlab.fit(
        "diffusion", digits, steps=300, timesteps=100, ddim_steps=100, hidden=(64, 64),
        val_fraction=0.0, seed=0, device="cpu",
    )  # fmt: skip
    model = model.double()
    x = digits.x_test[:16].double()
    z = model.encode(x)
    assert z.shape == (16, 64) and z.std() > 0.5  # a noise-like code, not the data
    torch.testing.assert_close(model.decode(z), x, atol=1e-3, rtol=0)
