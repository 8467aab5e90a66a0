"""GAN and BiGAN: the vanishing-gradient claim, the paper recipes, averaging, diagnostics, coverage."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import genlab
import genlab.api
from genlab.errors import TrainingDiverged
from genlab.io import read_safetensors
from genlab.models.gan import GAN, GANConfig, total_grad_norm
from genlab.nn import ProjectionDiscriminator
from genlab.objectives import (
    GAN_LOSSES,
    minimax_discriminator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
)
from genlab.runs import read_metrics
from genlab.stats.modes import mode_coverage_for
from genlab.train import Optimizers

SMALL = {"hidden": (32, 32), "batch_size": 64, "val_fraction": 0.0}
DIAGNOSTICS = (
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "wasserstein_estimate",
    "d_grad_norm",
    "g_grad_norm",
)


def _model(data, **settings) -> tuple[GAN, Optimizers]:
    resolved = genlab.api.resolve_settings("gan", settings)
    model = genlab.api.build_model("gan", resolved.model, data.info)
    model.prepare(data.x_train)
    return model, Optimizers(model.configure_optimizers(resolved.train))


def test_minimax_generator_gradient_vanishes_against_an_optimal_discriminator(ring):
    """Goodfellow et al. (2014), Section 3: log(1 - D(G(z))) saturates when D rejects G(z)."""
    model, _ = _model(ring, hidden=(64, 64))
    g = torch.Generator().manual_seed(0)
    data = model.normalizer(ring.x_train)
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=2e-3)
    for _ in range(200):  # train D against the fixed (initial) generator
        real = data[torch.randint(len(data), (256,), generator=g)]
        with torch.no_grad():
            fake = model.generator_net(model.latent(256, g))
        loss = minimax_discriminator_loss(model.critic(real), model.critic(fake))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    z = model.latent(2048, g)
    with torch.no_grad():
        d_fake = model.critic(model.generator_net(z)).sigmoid().mean()
        d_real = model.critic(data[:2048]).sigmoid().mean()
    assert d_real > 0.99 and d_fake < 0.01, (d_real, d_fake)  # D is (near) optimal

    def generator_gradient_norm(loss_fn) -> float:
        model.generator_net.zero_grad()
        loss_fn(model.critic(model.generator_net(z))).backward()
        return float(total_grad_norm(list(model.generator_net.parameters())))

    minimax = generator_gradient_norm(minimax_generator_loss)
    nonsaturating = generator_gradient_norm(nonsaturating_generator_loss)
    assert 0 < minimax <= nonsaturating / 100, (minimax, nonsaturating)


def test_each_loss_picks_its_paper_recipe():
    resolved = genlab.api.resolve_settings("gan", {"loss": "wasserstein"})
    cfg, train = resolved.model, resolved.train
    assert (cfg.optimizer, cfg.clip, cfg.d_steps, cfg.r1_weight, train.lr) == (
        "rmsprop",
        0.01,
        5,
        0.0,
        5e-5,
    )
    resolved = genlab.api.resolve_settings("gan", {"loss": "wasserstein-gp"})
    cfg, train = resolved.model, resolved.train
    assert (cfg.betas, cfg.gp_weight, cfg.d_steps, cfg.clip, train.lr) == (
        (0.5, 0.9),
        10.0,
        5,
        None,
        1e-4,
    )
    # the user's settings win over the recipe
    resolved = genlab.api.resolve_settings("gan", {"loss": "wasserstein", "d_steps": 2})
    cfg, train = resolved.model, resolved.train
    assert cfg.d_steps == 2 and cfg.optimizer == "rmsprop"


def test_wasserstein_clips_every_critic_weight_and_takes_several_critic_steps(ring):
    model, optimizers = _model(ring, loss="wasserstein", hidden=(32, 32))
    assert isinstance(optimizers["discriminator"], torch.optim.RMSprop)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        metrics = model.training_step(ring.x_train[:320], optimizers, g)
    for p in model.discriminator.parameters():
        assert float(p.detach().abs().max()) <= 0.01
    largest = max(float(p.detach().abs().max()) for p in model.discriminator.parameters())
    assert largest == pytest.approx(0.01)  # the clip is active
    # 5 critic updates per generator update
    d_state = optimizers["discriminator"].state[next(model.discriminator.parameters())]
    g_state = optimizers["generator"].state[next(model.generator_net.parameters())]
    assert int(d_state["step"]) == 15 and int(g_state["step"]) == 3
    assert set(DIAGNOSTICS) <= set(metrics)


def test_wasserstein_gp_logs_its_penalty(ring):
    model, optimizers = _model(ring, loss="wasserstein-gp", hidden=(32, 32))
    metrics = model.training_step(ring.x_train[:320], optimizers, torch.Generator())
    assert metrics["gradient_penalty"] > 0


@pytest.mark.parametrize("loss", GAN_LOSSES)
def test_every_loss_trains_with_finite_diagnostics(loss, ring):
    model = genlab.fit("gan", ring, loss=loss, steps=5, **SMALL)
    assert model.capabilities.log_prob == "none"
    assert torch.isfinite(model.sample(10, generator=torch.Generator())).all()


def test_spectral_norm_bounds_every_discriminator_layer(ring):
    model, optimizers = _model(ring, spectral_norm=True, hidden=(32, 32))
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        model.training_step(ring.x_train[:128], optimizers, g)
    model.eval()
    layers = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 3
    for layer in layers:  # the effective weight has spectral norm 1 (power iteration estimate)
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05)


def test_samples_come_from_the_averaged_generator(ring):
    model = genlab.fit("gan", ring, steps=20, ema_decay=0.9, **SMALL)
    z = torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        averaged = model.normalizer.inverse(model.averaged["generator"](z))
        raw = model.normalizer.inverse(model.generator_net(z))
        sampled = model.sample(16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sampled, averaged)
    assert not torch.allclose(averaged, raw)
    assert any(k.startswith("averaged.generator.") for k in model.state_dict())
    assert int(model.steps) == 20


def test_projection_discriminator_adds_the_label_embedding_times_the_features():
    """Miyato & Koyama (2018), eq. 3: D(x, y) = psi(phi(x)) + <V e_y, phi(x)>."""
    features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.Tanh())
    d = ProjectionDiscriminator(features, 5, n_classes=3).double()
    with torch.no_grad():
        for p in d.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    phi = features(x)
    expected = d.head(phi).squeeze(1) + (d.embed.weight.T[y] * phi).sum(1)
    torch.testing.assert_close(d(x, torch.eye(3, dtype=torch.float64)[y]).squeeze(1), expected)


def test_conditional_r1_penalty_is_the_gradient_in_x_with_the_label_fixed(labelled_ring):
    model, optimizers = _model(labelled_ring, conditional=True, hidden=(32, 32), r1_every=1)
    x, y = labelled_ring.x_train[:128], labelled_ring.y_train[:128]
    u = model.normalizer(x).requires_grad_(True)
    labels = torch.nn.functional.one_hot(y, 8).float()
    (grad,) = torch.autograd.grad(model.critic(u, labels).sum(), u)
    metrics = model.training_step(x, optimizers, torch.Generator().manual_seed(0), context=y)
    expected = grad.square().sum(1).mean()
    torch.testing.assert_close(metrics["r1_penalty"], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", GAN_LOSSES)
def test_conditional_gan_trains_under_every_loss(loss, labelled_ring):
    """Every game, the penalties and the averaging take labels: finite diagnostics and samples."""
    settings = dict(loss=loss, steps=5, conditional=True, r1_every=1, **SMALL)
    model = genlab.fit("gan", labelled_ring, **settings)
    assert model.capabilities.context
    samples = model.sample(10, generator=torch.Generator(), context=torch.arange(10) % 8)
    assert torch.isfinite(samples).all()


def test_conditional_samples_come_from_the_averaged_generator(labelled_ring):
    model = genlab.fit("gan", labelled_ring, steps=20, ema_decay=0.9, conditional=True, **SMALL)
    z = torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 8
    inputs = torch.cat([z, torch.nn.functional.one_hot(y, 8).float()], 1)
    with torch.no_grad():
        averaged = model.normalizer.inverse(model.averaged["generator"](inputs))
        raw = model.normalizer.inverse(model.generator_net(inputs))
        sampled = model.sample(16, generator=torch.Generator().manual_seed(0), context=y)
    torch.testing.assert_close(sampled, averaged)
    assert not torch.allclose(averaged, raw)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, ring, monkeypatch):
    """The averaged weights, step counter, lazy R1 and the lr schedule all survive a resume."""
    settings = dict(
        steps=40, checkpoint_every=10, r1_weight=1.0, r1_every=3, lr_schedule="linear", **SMALL
    )
    genlab.fit("gan", ring, out=tmp_path / "whole", **settings)

    calls = {"n": 0}
    original = GAN.training_step

    def crash_at_step_25(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GAN, "training_step", crash_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        genlab.fit("gan", ring, out=tmp_path / "cut", **settings)
    monkeypatch.undo()
    genlab.resume(tmp_path / "cut", data=ring)
    whole, cut = (load_file(tmp_path / r / "model.safetensors") for r in ("whole", "cut"))
    assert whole.keys() == cut.keys()
    for key in whole:
        assert torch.equal(whole[key], cut[key]), key
    # the learning rate decayed linearly to initial / steps at the last step
    meta = json.loads(read_safetensors(tmp_path / "cut/checkpoints/last.safetensors")[1]["optim"])
    group = meta["generator"]["param_groups"][0]
    assert group["lr"] == pytest.approx(group["initial_lr"] / 40)


def test_run_logs_diagnostics_every_step_and_mode_coverage_at_validation(tmp_path, ring):
    run = tmp_path / "run"
    genlab.fit("gan", ring, out=run, steps=12, eval_every=6, hidden=(32, 32), batch_size=64)
    records = read_metrics(run)
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in train] == list(range(1, 13))
    assert all(set(DIAGNOSTICS) <= set(r) for r in train)
    assert [r["step"] for r in val] == [6, 12]
    assert all({"d_real_val", "modes_captured", "hq_fraction", "mode_kl"} <= set(r) for r in val)
    assert (run / "curves.png").stat().st_size > 10_000
    assert (run / "samples.png").exists()


def test_divergence_names_the_quantity(tmp_path, ring):
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: \w+ = (nan|inf)"):
        genlab.fit("gan", ring, out=tmp_path / "run", steps=200, lr=1e15, **SMALL)


def test_default_gan_covers_the_ring_at_a_small_budget(ring):
    """A short run of the documented defaults: every mode, most samples near one."""
    model = genlab.fit("gan", ring, steps=600, seed=0)
    untrained = genlab.api.build_model("gan", GANConfig(), ring.info)
    untrained.prepare(ring.x_train)
    g = torch.Generator().manual_seed(0)
    result = mode_coverage_for(model.sample(2500, generator=g), ring.info)
    baseline = mode_coverage_for(untrained.sample(2500, generator=g), ring.info)
    assert result.modes_captured == 8 and result.hq_fraction > 0.3, result
    assert baseline.hq_fraction < 0.05


def test_bigan_encoder_inverts_its_generator_on_the_ring(ring):
    """BiGAN's optimum has E = G^{-1}: a data point's reconstruction G(E(x)) stays in its mode."""
    settings = dict(steps=600, hidden=(64, 64, 64), batch_size=128, lr=2e-3)
    model = genlab.fit("bigan", ring, seed=0, **settings)
    centres = torch.tensor(ring.info.mode_centres, dtype=torch.float32)
    x = ring.x_test[:2000]
    with torch.no_grad():
        x_hat = model.reconstruct(x)
        z = torch.randn(2000, model.latent_dim, generator=torch.Generator().manual_seed(1))
        z_hat = model.encode(model.decode(z))
    same_mode = (
        torch.cdist(x_hat, centres).argmin(1) == torch.cdist(x, centres).argmin(1)
    ).float()
    assert float(same_mode.mean()) > 0.5  # chance: 1/8
    correlation = torch.corrcoef(torch.cat([z.T, z_hat.T]))[: model.latent_dim, model.latent_dim :]
    assert bool((correlation.diag() > 0.5).all()), correlation


def test_bigan_codes_of_digits_beat_its_untrained_encoder(digits):
    """The acceptance bar (linear probe >= 0.6) and more: training improves on random features."""
    from genlab.metrics.representation import representation_scores

    settings = dict(steps=300, architecture="mlp", batch_size=128)
    model = genlab.fit("bigan", digits, seed=0, **settings)
    untrained = genlab.api.build_model("bigan", model.config, digits.info, seed=0)
    untrained.prepare(digits.x_train)
    before = representation_scores(untrained, digits)["probe_accuracy"]
    after = representation_scores(model, digits)["probe_accuracy"]
    assert after >= 0.6 and after > before + 0.05, (before, after)


def test_a_linear_image_output_has_no_tanh_and_its_samples_stay_in_the_value_range():
    """``image_output="linear"`` (the 28x28 settings) drops the generator's tanh, so it cannot
    saturate; its samples are clipped to the data's value range, its training outputs are not."""
    from genlab.data import DataInfo

    info = DataInfo("t", (1, 8, 8), "image", levels=256, value_range=(0.0, 255.0))
    tanh = GAN(GANConfig(architecture="conv", channels=4), info)
    linear = GAN(GANConfig(architecture="conv", channels=4, image_output="linear"), info)
    assert isinstance(list(tanh.generator_net.modules())[-1], torch.nn.Tanh)
    assert not any(isinstance(m, torch.nn.Tanh) for m in linear.generator_net.modules())
    linear.prepare(torch.zeros(4, 1, 8, 8))
    last = [m for m in linear.averaged["generator"].modules() if isinstance(m, torch.nn.Conv2d)][
        -1
    ]
    with torch.no_grad():
        last.bias.fill_(3.0)  # normalised outputs near 3: far above the range's 1
        raw = linear.averaged["generator"](torch.randn(16, linear.latent_dim))
        samples = linear.sample(16, generator=torch.Generator().manual_seed(0))
    assert raw.max() > 1.5
    assert samples.min() >= 0.0 and samples.max() == 255.0
