"""The forward process and the DDPM/DDIM updates against diffusers' schedulers (the reference
oracle), at 1e-6: schedule quantities, one DDPM step for each variance and prediction, one
DDIM step, 50 DDIM steps with each timestep spacing; and DDIM with eta = 1 has DDPM's
posterior variance."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from genlab.samplers.diffusion import (
    Denoised,
    GaussianDecoder,
    ReverseProcess,
    ddim_sample,
    ddim_step,
    denoised,
)
from genlab.samplers.schedules import (
    BETA_SCHEDULES,
    SPACINGS,
    NoiseSchedule,
    cosine_betas,
    linear_betas,
    log_snr_betas,
    log_snr_range,
    make_betas,
    timesteps,
)

T = 1000
TOL = 1e-6
DIFFUSERS_NAMES = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}


def in_float64(scheduler, betas):
    """diffusers keeps its schedule in float32, whose rounding alone moves x_0 = (x_t - ...) /
    sqrt(alpha_bar) by 1e-4 at t = 999: compare the algorithms on the same float64 betas (the
    float32 schedules themselves are compared in the first test)."""
    scheduler.betas = betas.clone()
    scheduler.alphas = 1.0 - betas
    scheduler.alphas_cumprod = torch.cumprod(scheduler.alphas, 0)
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def close(ours, theirs, tol=TOL):
    torch.testing.assert_close(
        torch.as_tensor(ours).double(), torch.as_tensor(theirs).double(), rtol=0, atol=tol
    )


@pytest.mark.parametrize(
    ("name", "diffusers_name"), [("linear", "linear"), ("cosine", "squaredcos_cap_v2")]
)
def test_schedule_quantities_match_diffusers(name, diffusers_name):
    ours = NoiseSchedule(make_betas(name, T))
    theirs = DDPMScheduler(num_train_timesteps=T, beta_schedule=diffusers_name)
    close(ours.betas, theirs.betas)
    close(ours.alphas_cumprod, theirs.alphas_cumprod)
    t = torch.arange(1, T)
    # DDPM's posterior variance (fixed_small) and beta_t recomputed from the alphas (fixed_large)
    close(ours.posterior_variance[1:], torch.stack([theirs._get_variance(int(s)) for s in t]))
    large = [theirs._get_variance(int(s), variance_type="fixed_large") for s in range(T)]
    close(ours.betas, torch.stack(large))


def test_schedules_are_valid_and_the_log_snr_one_is_linear_in_log_snr():
    for name in BETA_SCHEDULES:
        schedule = NoiseSchedule(make_betas(name, 100, log_snr=log_snr_range(17)))
        assert bool((schedule.alphas_cumprod.diff() < 0).all())
        assert 0 < float(schedule.alphas_cumprod[-1]) < 0.01
    high, low = 9.0, -7.0
    alpha_bar = torch.cumprod(1 - log_snr_betas(50, high, low), 0)
    log_snr = torch.log(alpha_bar / (1 - alpha_bar))
    close(log_snr, torch.linspace(high, low, 50, dtype=torch.float64), 1e-9)
    # the linear schedule keeps its process when T changes (betas scaled by 1000 / T)
    assert abs(float(torch.cumprod(1 - linear_betas(100), 0)[-1]) - 4.0e-5) < 2e-5
    assert float(cosine_betas(T).max()) <= 0.999


def _theirs_ddpm(variance_type, prediction):
    betas = linear_betas(T)
    return in_float64(
        DDPMScheduler(
            num_train_timesteps=T,
            beta_schedule="linear",
            variance_type=variance_type,
            prediction_type=DIFFUSERS_NAMES[prediction],
            clip_sample=False,
        ),
        betas,
    )


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
def test_one_ddpm_step_matches_diffusers(prediction, variance):
    schedule = NoiseSchedule(linear_betas(T))
    theirs = _theirs_ddpm(variance, prediction)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    output = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    v = torch.rand(4, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    for step in (1, 37, 500, 999):
        t = torch.full((4,), step, dtype=torch.long)
        model_output = torch.cat([output, v], 1) if variance == "learned_range" else output
        expected = theirs.step(
            model_output, step, x, generator=torch.Generator().manual_seed(step)
        )
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(step), dtype=x.dtype)
        prediction_ = denoised(schedule, x, t, output, prediction, variance, v)
        mean, _ = schedule.q_posterior(prediction_.x0, x, t)
        log_var = prediction_.log_var.expand_as(mean)
        close(prediction_.x0, expected.pred_original_sample)
        close(mean + torch.exp(0.5 * log_var) * noise, expected.prev_sample)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_one_ddim_step_matches_diffusers(prediction, eta):
    schedule = NoiseSchedule(cosine_betas(T))
    theirs = in_float64(
        DDIMScheduler(
            num_train_timesteps=T,
            beta_schedule="squaredcos_cap_v2",
            prediction_type=DIFFUSERS_NAMES[prediction],
            clip_sample=False,
        ),
        schedule.betas,
    )
    theirs.set_timesteps(50)  # steps of 20 in diffusers' arithmetic
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    output = torch.randn(3, 6, generator=g, dtype=torch.float64)
    for t in (980, 500, 0):
        expected = theirs.step(output, t, x, eta=eta, generator=torch.Generator().manual_seed(t))
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=x.dtype)
        pred = denoised(schedule, x, torch.full((3,), t), output, prediction, "fixed_small")
        s = t - 20 if t >= 20 else -1  # the data
        close(ddim_step(schedule, x, pred, t, s, eta, noise), expected.prev_sample)


def _ddim_trajectory(theirs, model, x, steps):
    theirs.set_timesteps(steps)
    for t in theirs.timesteps:
        x = theirs.step(model(x, int(t)), int(t), x).prev_sample
    return x


@pytest.mark.parametrize("spacing", SPACINGS)
def test_fifty_ddim_steps_match_diffusers_for_each_spacing(spacing):
    """Same timesteps as diffusers; where diffusers' ``t - T // S`` previous timestep is the next
    entry of the list (leading, trailing at S | T), the whole 50-step trajectory agrees; with
    linspace it is not, and ours follows the list (diffusers' step then skips or repeats noise
    levels: the indexing bug the issue mentions)."""
    schedule = NoiseSchedule(linear_betas(T))
    theirs = in_float64(DDIMScheduler(
        num_train_timesteps=T, beta_schedule="linear", clip_sample=False,
        timestep_spacing=spacing, set_alpha_to_one=True,
    ), schedule.betas)  # fmt: skip
    theirs.set_timesteps(50)
    ours_t = timesteps(T, 50, spacing)
    assert ours_t.tolist() == theirs.timesteps.tolist()
    if spacing != "leading":
        assert ours_t[0] == T - 1

    def eps_model(x, t):  # a fixed smooth "network" of (x, t)
        return torch.tanh(0.7 * x + 0.3) * math.cos(t / 300)

    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    process = ReverseProcess(
        schedule,
        lambda xt, t: denoised(
            schedule, xt, t, eps_model(xt, int(t[0])), "epsilon", "fixed_small"
        ),
        GaussianDecoder(),
    )
    ours = ddim_sample(process, x, 50, spacing=spacing, progress=False)
    previous = (ours_t - T // 50).tolist()
    follows_list = previous[:-1] == ours_t[1:].tolist()
    if follows_list:
        close(ours, _ddim_trajectory(theirs, eps_model, x, 50))
    else:
        assert spacing == "linspace"
        # step by step from the same states, each update agrees when given the same pair of
        # timesteps: feed diffusers' alphas for the list's previous timestep
        state = x
        for i, t in enumerate(ours_t.tolist()):
            s = ours_t[i + 1].item() if i + 1 < len(ours_t) else -1
            pred = process.at(state, t)
            nxt = ddim_step(schedule, state, pred, t, s)
            a_s = theirs.alphas_cumprod[s] if s >= 0 else theirs.final_alpha_cumprod
            a_t = theirs.alphas_cumprod[t]
            x0 = (state - (1 - a_t).sqrt() * eps_model(state, t)) / a_t.sqrt()
            close(nxt, a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps_model(state, t))
            state = nxt


def test_ddim_with_eta_one_has_the_ddpm_posterior_variance():
    schedule = NoiseSchedule(cosine_betas(T))
    x = torch.zeros(1, 1, dtype=torch.float64)
    zero = Denoised(x, x, x)
    for t in range(1, T):
        # with x0 = eps = 0 the update is sigma * noise: its variance is sigma^2
        sigma = ddim_step(schedule, x, zero, t, t - 1, 1.0, torch.ones_like(x))
        close(sigma.square()[0, 0], schedule.posterior_variance[t], 1e-12)
