"""The diffusion family: units and the bound in bits/dim, training beats a baseline, the
sampling and completion options, the importance sampler of timesteps, configuration errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import genlab
import genlab.api
from genlab.data import DataInfo
from genlab.errors import ConfigError
from genlab.metrics.likelihood import bits_per_dim, log_likelihood
from genlab.models.diffusion import Diffusion, DiffusionConfig
from genlab.nn.denoisers import FourierFeatures
from genlab.objectives import simple_loss
from genlab.report.family import picture_samples
from genlab.samplers.diffusion import bound_term
from genlab.samplers.schedules import (
    ImportanceTimesteps,
    NoiseSchedule,
    draw_timesteps,
    log_normal_timestep_probabilities,
    make_betas,
)
from genlab.train.config import TrainConfig
from genlab.train.optim import Optimizers

SMALL = {"timesteps": 100, "ddim_steps": 20, "hidden": (64, 64), "particles": 4}


@pytest.fixture(scope="module")
def trained(digits):
    """300 steps of a small model: enough to beat PPCA's exact likelihood by a margin."""
    return genlab.fit("diffusion", digits, steps=300, val_fraction=0.0, seed=0, **SMALL)


def test_a_short_training_beats_ppca_on_held_out_digits(trained, digits):
    result = genlab.evaluate(trained, digits)
    assert result["log_prob_kind"] == "lower_bound"
    ppca = genlab.evaluate(genlab.fit("pca", digits, latent_dim=16), digits)
    # the bound of 300 steps is below PPCA's exact value (3.7 bits/dim) by more than 0.5
    assert result["bits_per_dim"] < ppca["bits_per_dim"] - 0.5
    assert 0.5 < result["bits_per_dim"]  # and not absurdly low


def test_log_prob_is_a_density_on_dequantised_values(trained, digits):
    """Constant on each level's bin, and the bits/dim of metrics.likelihood are the discrete
    bound's: -log P(x) / (D log 2), whatever the dequantisation noise."""
    x = digits.x_test[:8]
    log_p = trained.log_prob(x)
    torch.testing.assert_close(trained.log_prob(x + 0.45), log_p)
    torch.testing.assert_close(trained.log_prob(x - 0.45), log_p)
    g = torch.Generator().manual_seed(0)
    nats = log_likelihood(trained, x, digits.info, generator=g)  # dequantised, + D log delta
    torch.testing.assert_close(nats, log_p.double())  # delta = 1 for digits
    assert bits_per_dim(float(nats.mean()), digits.info) == pytest.approx(
        -float(log_p.mean()) / (64 * math.log(2)), rel=1e-6
    )


def test_the_cheap_estimate_agrees_with_the_full_bound_on_average(trained, digits):
    x = digits.x_test[:64]
    full = -trained.log_prob(x, generator=torch.Generator().manual_seed(1))
    estimate = trained.bound_estimate(x, count=10, generator=torch.Generator().manual_seed(2))
    difference = estimate - full
    error = difference.std() / math.sqrt(len(x))
    assert abs(float(difference.mean())) < 4 * float(error)


def test_samplers_and_completions(trained, digits):
    g = torch.Generator().manual_seed(0)
    ddpm = trained.sample(6, generator=g)
    assert ddpm.shape == (6, 1, 8, 8)
    assert torch.equal(ddpm, ddpm.round()) and ddpm.min() >= 0 and ddpm.max() <= 16  # levels
    ddim = trained.sample(6, generator=g, method="ddim", steps=10, eta=0.5, spacing="linspace")
    assert ddim.shape == (6, 1, 8, 8) and torch.isfinite(ddim).all()
    chain = trained.denoising_chain(2, columns=5, generator=g)
    assert chain.shape == (2, 5, 1, 8, 8)
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :4] = True
    x = digits.x_test[:3]
    for method in ("smc", "replace"):
        out = trained.sample_conditional(x, mask, 2, generator=g, method=method)
        assert out.shape == (2, 3, 1, 8, 8)
        assert torch.equal(out[:, :, :, :4], x[:, :, :4].expand(2, -1, -1, -1, -1))
    captions = [caption for caption, _, _ in trained.illustrations(g)]
    assert any("chain" in c for c in captions) and any("DDIM" in c for c in captions)
    with pytest.raises(ConfigError, match="method"):
        trained.sample_conditional(x, mask, 1, method="gibbs")


def test_the_model_samples_with_its_averaged_weights(trained):
    live = trained.denoiser.state_dict()
    averaged = trained.averaged["denoiser"].state_dict()
    assert any(not torch.equal(live[k], averaged[k]) for k in live)


def test_importance_timesteps_weigh_the_terms_without_bias():
    sampler = ImportanceTimesteps(4, history=3)
    g = torch.Generator().manual_seed(0)
    t, w = sampler.draw(5, g)  # uniform until every timestep has its history
    assert torch.equal(w, torch.ones(5, dtype=torch.float64))
    terms = torch.tensor([8.0, 4.0, 2.0, 2.0])
    for _ in range(3):
        sampler.update_(torch.arange(4), terms)
    p = sampler.probabilities()
    expected = 0.999 * terms / terms.sum() + 0.001 / 4  # sqrt(E L^2) = L for constant terms
    torch.testing.assert_close(p, expected.double())
    t, w = sampler.draw(200_000, g)
    assert float((w * terms.double()[t]).mean()) == pytest.approx(float(terms.mean()), rel=0.01)


def test_log_normal_timesteps_follow_edm_on_the_log_snr_and_weigh_back_to_uniform():
    log_snr = torch.linspace(14.7, -6.9, 250, dtype=torch.float64)  # the 28x28 schedule's
    p = log_normal_timestep_probabilities(log_snr, mean=2.4, std=2.4, uniform=0.25)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    # the closed form: a quarter uniform, three quarters the normal density of lambda_t
    density = torch.exp(-((log_snr - 2.4) ** 2) / (2 * 2.4**2))
    torch.testing.assert_close(p, 0.25 / 250 + 0.75 * density / density.sum())
    assert abs(float(log_snr[p.argmax()]) - 2.4) < 0.1  # the mode at EDM's noise level
    middle = (log_snr > -5) & (log_snr < 5)  # where a digit's shape is decided
    assert float(p[middle].sum()) > 0.75 > float(middle.double().mean())  # uniform: 0.46
    assert float(p.min()) >= 0.25 / 250  # every term still trains: weights below 4
    # the draws follow p, their weights are 1/(T p_t), and the weighted terms average to the
    # uniform mean (the bound's term stays unbiased)
    t, w = draw_timesteps(p, 400_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(w, 1 / (250 * p[t]))
    assert float(log_snr[t].mean()) == pytest.approx(float((p * log_snr).sum()), abs=0.02)
    terms = torch.rand(250, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float((w * terms[t]).mean()) == pytest.approx(float(terms.mean()), rel=0.01)


def test_log_normal_timesteps_drive_the_training_step(digits, monkeypatch):
    model = genlab.fit(
        "diffusion", digits, steps=1, val_fraction=0.0, seed=0, timestep_sampling="log_normal",
        **SMALL,
    )  # fmt: skip
    expected = log_normal_timestep_probabilities(model.schedule.log_snr)
    draws = []

    def zero_weights(p, n, generator):  # the law the step draws from; weights that mute the bound
        draws.append(p)
        return torch.randint(len(p), (n,), generator=generator), torch.zeros(n)

    monkeypatch.setattr(genlab.models.diffusion, "draw_timesteps", zero_weights)
    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1, lr=1e-4)))
    x = digits.x_train[:16]
    out = model.training_step(x, optimizers, torch.Generator().manual_seed(0))
    assert len(draws) == 1
    torch.testing.assert_close(draws[0], expected)
    # hybrid = simple + lambda * weighted bound term: with zero weights it is the simple loss
    assert model.config.loss == "hybrid"
    assert float(out["vlb_nats_per_dim"]) > 0
    assert float(out["loss"]) == pytest.approx(float(out["simple"]), rel=1e-6)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"variance": "learned_range", "loss": "simple"}, "learned_range"),
        ({"timestep_sampling": "importance", "loss": "hybrid"}, "importance"),
        ({"ddim_steps": 2000}, "ddim_steps"),
        ({"schedule": "quadratic"}, "schedule"),
        ({"octaves": -1}, "octaves"),
        ({"autoguidance": 1.0}, "set guide_step"),
        ({"guide_step": 0}, "guide_step must be"),
    ],
)
def test_configuration_errors_name_the_problem(settings, match):
    with pytest.raises(ConfigError, match=match):
        genlab.api.resolve_settings("diffusion", settings)


def test_continuous_data_and_the_unet(ring, digits):
    with pytest.raises(ConfigError, match="levels"):
        genlab.fit("diffusion", ring, steps=1, prediction="levels", **SMALL)
    model = genlab.fit("diffusion", ring, budget="smoke", seed=0)
    assert model.prediction == "epsilon" and model.octaves == 6  # vectors: Fourier inputs
    lp = model.log_prob(ring.x_test[:4])  # a density in data units: standardisation included
    shifted = model.log_prob(ring.x_test[:4] * 2)
    assert torch.isfinite(lp).all() and not torch.allclose(lp, shifted)
    assert genlab.fit("diffusion", digits, steps=1, **SMALL).octaves == 0  # images: none
    unet = genlab.fit("diffusion", digits, budget="smoke", architecture="unet", seed=0)
    assert unet.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)
    with pytest.raises(ConfigError, match="unet"):
        genlab.fit("diffusion", ring, budget="smoke", architecture="unet")


def test_the_unet_on_patches(digits):
    """patch=2 folds each 2x2 patch of the 8x8 digits into channels: 4 x 4 x 4 inside, 8x8 out."""
    unet = genlab.fit("diffusion", digits, budget="smoke", architecture="unet", patch=2, seed=0)
    assert unet.denoiser.input.in_channels == 4 and unet.denoiser.sizes == [(4, 4)]
    draws = unet.sample(3, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (3, 1, 8, 8) and torch.isfinite(unet.log_prob(digits.x_test[:3])).all()
    for settings in ({"patch": 3, "architecture": "unet"}, {"patch": 2, "architecture": "mlp"}):
        with pytest.raises(ConfigError, match="patch=.* needs architecture=unet"):
            genlab.fit("diffusion", digits, steps=1, **settings)


@pytest.mark.parametrize("side,patch", [(8, 1), (28, 2), (17, 1), (16, 2)])
def test_patch_auto_folds_large_images_of_even_sides(side, patch):
    """patch=auto: 2x2 patches on images with even sides of 16 pixels or more. The default, 1,
    keeps the runs saved before patches existed (full-resolution U-Nets) loading as they were."""
    info = DataInfo("t", (1, side, side), "image", levels=256, value_range=(0.0, 255.0))
    model = Diffusion(
        DiffusionConfig(architecture="unet", channels=4, embed=8, patch="auto"), info
    )
    assert model.patch == patch and model.denoiser.input.in_channels == patch**2
    assert Diffusion(DiffusionConfig(architecture="unet", channels=4, embed=8), info).patch == 1


def test_28x28_images_get_the_unet_on_patches_by_default():
    info = DataInfo("t", (1, 28, 28), "image", levels=256, value_range=(0.0, 255.0))
    for budget in (None, "fast", "full"):
        resolved = genlab.api.resolve_settings("diffusion", {}, budget=budget, info=info)
        assert resolved.model.architecture == "unet" and resolved.model.patch == "auto"
        assert resolved.model.prediction == "v"  # its loss weighs the noisy steps more
        # autoguided by the network at a quarter of its training steps
        steps = resolved.train.steps
        assert resolved.model.autoguidance == 3.0 and resolved.model.guide_step == steps // 4
    smoke = genlab.api.resolve_settings("diffusion", {}, budget="smoke", info=info).model
    assert smoke.architecture == "auto" and smoke.patch == 1  # the cheap MLP


def test_data_of_many_levels_is_modelled_as_continuous(tmp_path):
    """A logit per level stops at 256 levels (as the other families' summed likelihoods): wider
    integer data gets the epsilon prediction and the 256-level schedule, and trains finitely."""
    x = np.random.default_rng(0).integers(-(2**24), 2**24, size=(60, 3))
    np.savez(tmp_path / "wide.npz", x=x)
    wide = genlab.data.load(str(tmp_path / "wide.npz"))
    assert wide.info.levels > 256
    with pytest.raises(ConfigError, match="at most 256 levels"):
        genlab.fit("diffusion", wide, steps=1, prediction="levels", **SMALL)
    model = genlab.fit("diffusion", wide, steps=3, seed=0, **SMALL)
    assert model.prediction == "epsilon"
    assert torch.isfinite(model.log_prob(wide.x_test)).all()


@pytest.fixture()
def bytes_path(tmp_path):
    """40 random 4x4 images of 256 levels, both ends present."""
    x = np.random.default_rng(0).integers(0, 256, size=(40, 1, 4, 4), dtype=np.uint8)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0, 255
    np.savez(tmp_path / "bytes.npz", x=x)
    return str(tmp_path / "bytes.npz")


def test_level_logits_only_for_few_levels_and_snapping_for_more(bytes_path, ring):
    """``prediction="auto"`` predicts level logits up to 32 levels (digits: 17) and epsilon for
    8-bit images, whose 257 outputs a pixel would make the output layer 257 times wider; there
    ``snap`` is on (one output more: log tau^2), and never for logits or continuous data."""
    bytes_model = genlab.fit("diffusion", bytes_path, steps=1, **SMALL)
    assert bytes_model.prediction == "epsilon" and bytes_model.snap
    assert bytes_model.outputs == 3 and bytes_model.decisions["snap"] is True
    digits_model = genlab.fit("diffusion", "digits", steps=1, **SMALL)
    assert digits_model.prediction == "levels" and not digits_model.snap
    assert not genlab.fit("diffusion", ring, steps=1, **SMALL).snap
    assert genlab.fit("diffusion", bytes_path, steps=1, snap=False, **SMALL).outputs == 2
    for data, settings in ((ring, {}), ("digits", {"prediction": "levels"})):
        with pytest.raises(ConfigError, match="snap=true needs discrete data"):
            genlab.fit("diffusion", data, steps=1, snap=True, **settings, **SMALL)


def test_snapping_removes_the_low_noise_terms_of_an_untrained_network(bytes_path):
    """Where the noise is far below a level's width, x_t says which level each pixel is on:
    snapped, even an untrained network's x0-hat is that level, and the bound's terms there
    (each step's KL and the decoder's) all but vanish; unsnapped they are the network's
    error, amplified by the signal-to-noise ratio. (Fixed variances: an untrained learned
    variance would add its own mismatch, about 0.01 nats a coordinate and step.)"""
    data = genlab.data.load(bytes_path)
    low_noise = {}
    for snap in (True, False):
        model = genlab.fit(
            "diffusion", data, steps=1, seed=0, snap=snap, variance="fixed_small",
            loss="simple", **SMALL,
        )  # fmt: skip
        process = model.process
        x0 = model.to_model(data.x_train)
        generator = torch.Generator().manual_seed(0)
        terms = []
        for step in range(5):  # noise std 0.0007-0.0011 (lambda 14.7-13.6): 3.5 stds to mid-level
            t = torch.full((len(x0),), step)
            xt = model.schedule.q_sample(x0, t, torch.randn(x0.shape, generator=generator))
            with torch.no_grad():
                terms.append(bound_term(process, x0, xt, t, process.denoise(xt, t)).mean())
        low_noise[snap] = float(torch.stack(terms).sum()) / data.info.n_features
    assert low_noise[False] > 0.25  # nats per coordinate: the network's error, magnified
    assert low_noise[True] < 1e-4


def test_a_run_saved_before_snapping_existed_loads_as_it_was_trained(bytes_path, tmp_path):
    """A run whose config.json predates ``snap`` (no such field, nothing decided about it) was
    trained without snapping: it loads with ``snap=False`` (``settings_before``), the network
    it saved and the same bound; a new run records what ``snap`` became and loads with it."""
    old = genlab.fit("diffusion", bytes_path, steps=2, snap=False, out=tmp_path / "old", **SMALL)
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    del config["model"]["snap"]
    assert "snap" not in (config.get("decided") or {})
    config_path.write_text(json.dumps(config))
    loaded = genlab.load(tmp_path / "old")
    assert not loaded.snap and loaded.outputs == 2
    x = genlab.data.load(bytes_path).x_test
    generator = torch.Generator().manual_seed(0)
    expected = old.log_prob(x, generator=generator)
    torch.testing.assert_close(loaded.log_prob(x, generator=generator.manual_seed(0)), expected)
    genlab.fit("diffusion", bytes_path, steps=2, out=tmp_path / "new", **SMALL)
    assert json.loads((tmp_path / "new" / "config.json").read_text())["decided"]["snap"] is True
    assert genlab.load(tmp_path / "new").snap


def test_evaluation_in_blocks_of_rows_gives_the_same_numbers(trained, digits, monkeypatch):
    """Without gradients the network runs in blocks of at most EVALUATION_OUTPUTS outputs (the
    bound's passes hold thousands of rows of L logits a coordinate): the same bound, to float
    precision, as one evaluation of every row."""
    from genlab.models import diffusion

    x = digits.x_test[:40]
    whole = trained.log_prob(x)
    per_row = trained.outputs * digits.info.n_features
    monkeypatch.setattr(diffusion, "EVALUATION_OUTPUTS", 7 * per_row)  # blocks of 7 rows
    calls = []
    original = trained._denoised_rows
    monkeypatch.setattr(
        trained, "_denoised_rows", lambda *a: calls.append(len(a[1])) or original(*a)
    )
    torch.testing.assert_close(trained.log_prob(x), whole)
    assert max(calls) == 7 and len(calls) > 1


def test_fourier_features_are_the_octave_sinusoids():
    x = torch.tensor([[0.25, -1.0], [0.5, 2.0]])
    features = FourierFeatures(3)(x)
    k = torch.arange(3)
    expected = [x]
    expected += [torch.sin(math.pi * 2.0**k * x[:, d, None]) for d in range(2)]
    expected += [torch.cos(math.pi * 2.0**k * x[:, d, None]) for d in range(2)]
    torch.testing.assert_close(features, torch.cat(expected, 1))
    torch.testing.assert_close(FourierFeatures(0)(x), x)


def test_the_simple_loss_of_each_target():
    schedule = NoiseSchedule(make_betas("cosine", 50))
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([3, 10, 20, 30, 49])
    a = schedule.at(schedule.alphas_cumprod, t, x0)
    for target in ("epsilon", "x0", "v"):  # exact predictions cost nothing
        assert float(simple_loss(target, x0, noise, x0, noise, a).abs().max()) == 0.0
    wrong = noise + 0.1
    v = schedule.velocity(x0, t, noise)
    v_hat = schedule.velocity(x0, t, wrong)
    torch.testing.assert_close(
        simple_loss("v", x0, wrong, x0, noise, a), (v - v_hat).square().mean(1)
    )
    torch.testing.assert_close(
        simple_loss("epsilon", x0, wrong, x0, noise, a), torch.full((5,), 0.01, dtype=x0.dtype)
    )
    # a denoiser's predictions at one x_t: the v loss is the epsilon loss times 1 + 1/SNR
    xt = schedule.q_sample(x0, t, noise)
    x0_hat = schedule.x0_from_epsilon(xt, t, wrong)
    snr = schedule.at(schedule.log_snr, t, x0).exp()  # the schedule's own SNR_t
    torch.testing.assert_close(
        simple_loss("v", x0_hat, wrong, x0, noise, a),
        simple_loss("epsilon", x0_hat, wrong, x0, noise, a) * (1 + 1 / snr).squeeze(1),
    )


def guided_run(digits, steps: int, **settings):
    return genlab.fit(
        "diffusion", digits, steps=steps, val_fraction=0.0, seed=0, lr_schedule="constant",
        guide_step=10, **SMALL, **settings,
    )  # fmt: skip


def test_the_guiding_copy_is_the_averaged_network_at_guide_step(digits):
    """Autoguidance's weak model is the average of the weights as it stood at ``guide_step``:
    a run stopped there holds the same network as its average; training on leaves the copy."""
    at_step = guided_run(digits, 10)
    longer = guided_run(digits, 25)
    copy, then = longer.guide_network.state_dict(), at_step.averaged["denoiser"].state_dict()
    for name, value in then.items():
        torch.testing.assert_close(copy[name], value)
    now = longer.averaged["denoiser"].state_dict()
    assert any(not torch.equal(copy[k], now[k]) for k in now)


def test_autoguidance_moves_the_samples_and_is_void_when_the_copy_is_the_model(digits):
    """The guided prediction is (1 + w) D - w D_weak (``guide``): with w = 0 the samples are
    the model's own, and a copy taken at the last step (D_weak = D) leaves every w's samples as
    they are; a copy from earlier changes them, through DDPM and DDIM alike."""
    longer = guided_run(digits, 25)
    last = guided_run(digits, 10)  # guide_step = 10: the copy is its own averaged network

    def draw(model, **options):
        return model.sample(6, generator=torch.Generator().manual_seed(3), **options)

    for method in ("ddpm", "ddim"):
        own = draw(longer, method=method, autoguidance=0.0)
        moved = (draw(longer, method=method, autoguidance=2.0) - own).abs().max()
        assert moved > 0.1  # data units: the digits' pixels run from 0 to 16
        assert torch.equal(draw(longer, method=method), own)  # the config's default w is 0
        same = draw(last, method=method, autoguidance=0.0)
        # equal up to the rounding of (1 + w) D - w D over the chain's steps
        torch.testing.assert_close(
            draw(last, method=method, autoguidance=2.0), same, atol=1e-3, rtol=0
        )


def test_a_conditional_model_is_autoguided_by_its_copy_given_the_same_labels(digits, monkeypatch):
    model = guided_run(digits, 15, conditional=True)
    labels = torch.tensor([3, 3, 7, 7])
    calls = []
    denoise_with = model.denoise_with

    def spy(net, given=None, guidance=0.0):  # which network each chain reads, and its labels
        calls.append((net, given, guidance))
        return denoise_with(net, given, guidance)

    monkeypatch.setattr(model, "denoise_with", spy)
    model.sample(4, context=labels, autoguidance=2.0)
    ((copy_net, copy_labels, copy_guidance),) = [c for c in calls if c[0] is model.guide_network]
    torch.testing.assert_close(copy_labels, labels)
    assert copy_guidance == model.config.guidance
    monkeypatch.undo()

    def draw(w: float) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return model.sample(4, generator=generator, context=labels, autoguidance=w)

    own, guided = draw(0.0), draw(2.0)
    assert guided.shape == own.shape and (guided - own).abs().max() > 0.1
    # by hand: the guided chain's first prediction is (1 + w) D(x, y) - w D_copy(x, y)
    x = torch.randn(4, *digits.info.event_shape, generator=torch.Generator().manual_seed(1))
    t = torch.full((4,), model.config.timesteps - 1)
    strong = model.denoise_with(model.averaged["denoiser"], labels, 1.0).denoise(x, t)
    weak = model.denoise_with(model.guide_network, labels, 1.0).denoise(x, t)
    process = model.autoguided(
        model.process_given(labels, 1.0), model.denoise_with(model.guide_network, labels, 1.0), 2.0
    )
    torch.testing.assert_close(process.denoise(x, t).eps, 3 * strong.eps - 2 * weak.eps)


def test_autoguidance_by_default_survives_the_run_directory(digits, tmp_path):
    model = guided_run(digits, 15, autoguidance=1.5, out=tmp_path / "run")
    loaded = genlab.load(tmp_path / "run")
    assert loaded.has_guide_copy
    expected = model.sample(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        loaded.sample(4, generator=torch.Generator().manual_seed(0)), expected
    )
    unguided = model.sample(4, generator=torch.Generator().manual_seed(0), autoguidance=0.0)
    assert not torch.equal(expected, unguided)
    _, caption = picture_samples(loaded, 4, generator=torch.Generator().manual_seed(0))
    assert caption.startswith(
        "samples (autoguided: w = 1.5 away from the network at training step 10"
    )
    assert guided_run(digits, 2).sample_note is None  # no copy taken, no default weight


def test_genlab_sample_passes_sampler_options_typed(digits, tmp_path, capsys):
    """``genlab sample RUN --set method=ddim --set steps=5 --set autoguidance=0`` draws what
    ``sample(method="ddim", steps=5, autoguidance=0.0)`` draws; unknown options and values that
    do not fit their type are refused, naming the options there are."""
    from genlab.cli import main

    run = tmp_path / "run"
    model = guided_run(digits, 15, autoguidance=1.5, out=run)
    out = tmp_path / "s.npy"
    settings = ["--set", "method=ddim", "--set", "steps=5", "--set", "autoguidance=0"]
    assert main(["sample", str(run), "-n", "4", "--out", str(out), *settings]) == 0
    expected = model.sample(
        4, generator=torch.Generator().manual_seed(0), method="ddim", steps=5, autoguidance=0.0
    )
    np.testing.assert_allclose(np.load(out), expected.numpy(), atol=1e-5, rtol=0)
    guided = model.sample(4, generator=torch.Generator().manual_seed(0), method="ddim", steps=5)
    assert not np.allclose(np.load(out), guided.numpy(), atol=1e-3)  # the option took effect
    capsys.readouterr()
    for setting, message in (
        ("temperature=0.5", "no option 'temperature'; its options: method, steps, eta"),
        ("steps=many", "steps must be an integer, got 'many'"),
        ("method=euler", "method must be one of ddpm, ddim"),
    ):
        assert main(["sample", str(run), "--out", str(out), "--set", setting]) == 2
        assert message in capsys.readouterr().err
    pca = tmp_path / "pca"
    assert main(["train", "pca", "--out", str(pca)]) == 0
    capsys.readouterr()
    assert main(["sample", str(pca), "--out", str(out), "--set", "steps=5"]) == 2
    assert "pca's sampler has no option 'steps'; it takes no options" in capsys.readouterr().err
    assert main(["sample", str(run), "--out", str(out), "--class", "3", "--set", "steps=5"]) == 2
    assert "train with conditional=true" in capsys.readouterr().err


def test_a_run_shorter_than_guide_step_warns_and_samples_unguided(digits):
    with pytest.warns(UserWarning, match="guide_step=10.*unguided"):
        model = guided_run(digits, 5, autoguidance=1.0)
    assert not model.has_guide_copy
    generator = torch.Generator().manual_seed(0)
    unguided = model.sample(3, generator=generator, autoguidance=0.0)
    torch.testing.assert_close(model.sample(3, generator=generator.manual_seed(0)), unguided)
    with pytest.raises(ConfigError, match="selected at training step 5, before it"):
        model.sample(3, autoguidance=1.0)
    plain = genlab.fit("diffusion", digits, steps=2, val_fraction=0.0, **SMALL)
    with pytest.raises(ConfigError, match="without one"):
        plain.sample(3, autoguidance=1.0)
