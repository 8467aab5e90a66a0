"""VQ-VAE: quantisation against brute force, straight-through gradients, the EMA update by hand,
code revival and usage, the prior normalised over every code grid, the bound against the exact
marginal and its uniform-prior closed form, two-stage training, and completion's code prefix."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import genlab
from genlab.data import DataInfo
from genlab.errors import ConfigError
from genlab.models.vqvae import VQVAE, VQVAEConfig
from genlab.nn.pixelcnn import GatedPixelCNN
from genlab.nn.quantizer import (
    VectorQuantizer,
    code_usage,
    codebook_ema_update,
    nearest_codes,
    straight_through,
)
from genlab.objectives import codebook_loss, commitment_loss
from genlab.runs import read_metrics

# ---------------------------------------------------------------------- quantisation


def test_nearest_codes_is_the_brute_force_argmin():
    z, codebook = torch.randn(50, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    expected = torch.cdist(z, codebook).argmin(-1)
    torch.testing.assert_close(nearest_codes(z, codebook), expected)


def _small_vqvae(update: str = "ema", **settings) -> VQVAE:
    info = DataInfo("tiny", (1, 4, 4), "image", levels=5, value_range=(0.0, 4.0))
    config = VQVAEConfig(
        grid=(2, 2), codebook_size=6, code_dim=3, channels=4, prior_channels=4, prior_layers=2,
        codebook_update=update, **settings,
    )  # fmt: skip
    model = VQVAE(config, info).double()
    model.prepare(torch.randint(0, 5, (20, 1, 4, 4)).double())
    return model


def test_straight_through_gives_the_encoder_the_gradient_at_the_code_and_the_codebook_none():
    """The reconstruction gradient reaching z_e equals the one at z_q, and no reconstruction
    gradient reaches the codebook (it learns from its own loss only)."""
    model = _small_vqvae(update="loss")
    x = torch.randint(0, 5, (8, 1, 4, 4)).double()
    target = model.likelihood.target(x.flatten(1))
    z_e = model._encode(x)
    z_e.retain_grad()
    indices, z_q = model.quantizer(z_e)
    z_st = straight_through(z_e, z_q)
    z_st.retain_grad()
    torch.testing.assert_close(z_st, z_q)  # the decoder reads the code's value
    reconstruction = -model.likelihood.log_prob(model._decoder_params(z_st), target).sum()
    reconstruction.backward()
    assert z_st.grad.abs().sum() > 0
    torch.testing.assert_close(z_e.grad, z_st.grad, rtol=0, atol=0)
    assert model.quantizer.codebook.grad is None
    # the codebook loss moves the codes only, the commitment loss the encoder only
    e = model.quantizer.codebook
    z = z_e.detach().requires_grad_(True)
    (grad_z,) = torch.autograd.grad(codebook_loss(z, model.quantizer.embed(indices)).sum(), z,
                                    allow_unused=True)  # fmt: skip
    assert grad_z is None
    grad_z, grad_e = torch.autograd.grad(
        commitment_loss(z, model.quantizer.embed(indices)).sum(), (z, e), allow_unused=True
    )
    assert grad_e is None
    torch.testing.assert_close(grad_z, 2 * (z - z_q.detach()))


def test_ema_update_matches_the_formula_by_hand():
    """Two codes in one dimension, decay 0.5, epsilon 0.1: every number worked out by hand."""
    counts, sums = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([[1.0], [3.0]])
    batch_counts = torch.tensor([3.0, 0.0], dtype=torch.float64)
    batch_sums = torch.tensor([[6.0], [0.0]], dtype=torch.float64)
    new_counts, new_sums, codebook = codebook_ema_update(
        counts, sums.double(), batch_counts, batch_sums, decay=0.5, epsilon=0.1
    )
    # N = 0.5 * [1, 1] + 0.5 * [3, 0] = [2, 0.5]; m = 0.5 * [1, 3] + 0.5 * [6, 0] = [3.5, 1.5]
    torch.testing.assert_close(new_counts, torch.tensor([2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(new_sums, torch.tensor([[3.5], [1.5]], dtype=torch.float64))
    # n = 2.5; smoothed N = (N + 0.1) / (2.5 + 0.2) * 2.5 = [2.1, 0.6] * 2.5 / 2.7
    smoothed = torch.tensor([2.1, 0.6], dtype=torch.float64) * 2.5 / 2.7
    torch.testing.assert_close(codebook, torch.tensor([[3.5], [1.5]]).double() / smoothed[:, None])
    # a code nothing was ever assigned to stays finite: no division by zero
    _, _, codebook = codebook_ema_update(
        torch.zeros(2), torch.zeros(2, 1), torch.tensor([2.0, 0.0]), torch.ones(2, 1), 0.9, 1e-5
    )
    assert torch.isfinite(codebook).all()


def test_quantizer_ema_step_moves_a_code_to_the_mean_of_its_vectors():
    """With decay 0 a code becomes the (smoothed) mean of the encoder outputs assigned to it."""
    vq = VectorQuantizer(4, 2).double()
    z_e = torch.randn(3, 2, 2, 2, dtype=torch.float64)  # 12 vectors
    indices, _ = vq(z_e)
    vq.ema_update_(z_e, indices, decay=0.0, epsilon=1e-12)
    flat = z_e.movedim(1, -1).reshape(-1, 2)
    for k in indices.unique():
        torch.testing.assert_close(vq.codebook[k], flat[indices.flatten() == k].mean(0))
        assert vq.counts[k] == (indices == k).sum()


def test_revival_moves_dead_codes_onto_batch_vectors():
    vq = VectorQuantizer(5, 2).double()
    vq.counts.copy_(torch.tensor([3.0, 0.2, 2.0, 0.0, 1.5], dtype=torch.float64))
    z_e = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    before = vq.codebook.clone()
    assert vq.revive_(z_e, threshold=1.0, generator=torch.Generator().manual_seed(0)) == 2
    flat = z_e.movedim(1, -1).reshape(-1, 2)
    for k in (1, 3):  # moved onto encoder outputs, restarted as used once
        assert torch.isclose(
            torch.cdist(vq.codebook[k : k + 1], flat).min(), torch.tensor(0.0).double()
        )
        assert vq.counts[k] == 1 and torch.equal(vq.sums[k], vq.codebook[k])
    torch.testing.assert_close(vq.codebook[[0, 2, 4]], before[[0, 2, 4]])


def test_code_usage_fraction_and_perplexity():
    uniform = torch.bincount(torch.arange(8).repeat(5), minlength=8)
    assert code_usage(uniform) == (1.0, pytest.approx(8.0))
    one = torch.bincount(torch.full((10,), 3), minlength=8)
    assert code_usage(one) == (0.125, pytest.approx(1.0))
    counts = torch.tensor([1, 3, 0, 0])
    p = torch.tensor([0.25, 0.75])
    assert code_usage(counts) == (0.5, pytest.approx(float(torch.exp(-(p * p.log()).sum()))))


# ---------------------------------------------------------------------- the prior and the bound


def test_pixelcnn_over_several_input_channels_stays_causal():
    """With one-hot-like inputs of several channels, output (i, j) reads no channel of (i, j)
    or of any later position, and every channel of every earlier one."""
    h = w = 3
    net = GatedPixelCNN(n_outputs=2, channels=6, n_layers=3, in_channels=4).double()
    x = torch.randn(1, 4, h, w, dtype=torch.double)
    jacobian = torch.autograd.functional.jacobian(lambda v: net(v)[0, 0], x)  # (H, W, 1, 4, H, W)
    jacobian = jacobian.view(h * w, 4, h * w).abs().sum(1)  # (output, input position)
    earlier = torch.arange(h * w)[:, None] > torch.arange(h * w)[None, :]
    assert torch.all(jacobian[~earlier] == 0)
    assert torch.all(jacobian[earlier] != 0)


def _vector_vqvae() -> VQVAE:
    """An MLP VQ-VAE on 3-D vectors with 2 codes of 3 values: 9 code grids in all."""
    info = DataInfo("tiny", (3,), "vector", levels=4, value_range=(0.0, 3.0))
    config = VQVAEConfig(
        grid=(1, 2), codebook_size=3, code_dim=2, hidden=(8,), prior_channels=4, prior_layers=2
    )
    model = VQVAE(config, info).double()
    model.prepare(torch.randint(0, 4, (30, 3)).double())
    with torch.no_grad():  # distinct codes, a prior far from uniform
        model.quantizer.codebook.copy_(torch.randn(3, 2, dtype=torch.float64))
        for p in model.prior.parameters():
            p.add_(torch.randn_like(p))
    return model.eval()


@torch.no_grad()
def test_prior_sums_to_one_and_samples_follow_it():
    model = _vector_vqvae()
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).view(9, 1, 2)
    log_p = model.prior_log_prob(grids)
    torch.testing.assert_close(float(log_p.exp().sum()), 1.0, rtol=0, atol=1e-9)
    n = 4000
    empty = torch.zeros(n, 1, 2, dtype=torch.long)
    drawn = model._sample_codes(empty, 0, torch.Generator().manual_seed(0)).view(n, 2)
    frequencies = torch.bincount(drawn[:, 0] * 3 + drawn[:, 1], minlength=9).double() / n
    assert (frequencies - log_p.exp()).abs().max() < 4 * math.sqrt(0.25 / n)


@torch.no_grad()
def test_prior_samples_by_row_passes_are_those_of_whole_grid_passes():
    """The prior's raster passes (the drawn row alone, its vertical stack once a row) draw the
    same codes from the same generator as passes over the whole grid: a 5x2 grid, whose rows
    reach above the 2 rows a one-layer prior reads."""
    from genlab.samplers import draw_categorical, sample_in_order

    info = DataInfo("tiny", (3,), "vector", levels=4, value_range=(0.0, 3.0))
    config = VQVAEConfig(grid=(5, 2), codebook_size=3, code_dim=2, hidden=(8,), prior_layers=1)
    model = VQVAE(config, info).double().eval()
    for p in model.prior.parameters():
        p.add_(torch.randn_like(p))
    assert model.prior.rows_above < 5
    empty = torch.zeros(6, 5, 2, dtype=torch.long)
    rows = model._sample_codes(empty, 0, torch.Generator().manual_seed(2))
    whole = sample_in_order(
        lambda flat, d: model.prior_logits(flat.view(-1, 5, 2)).flatten(2),
        lambda logits, d, g: draw_categorical(logits[:, :, d], g),
        empty.flatten(1), torch.arange(10), 0, torch.Generator().manual_seed(2),
    )  # fmt: skip
    torch.testing.assert_close(rows.flatten(1), whole)


@torch.no_grad()
def test_bound_is_below_the_exact_marginal_and_is_its_largest_term():
    """log p(x) = logsumexp over all 9 code grids of log p(x | z) + log p(z) >= the bound, which
    is the term of the encoder's grid."""
    model = _vector_vqvae()
    x = torch.randint(0, 4, (10, 3)).double()
    target = model.likelihood.target(x)
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).view(9, 1, 2)
    terms = torch.stack(
        [
            model.likelihood.log_prob(
                model._decoder_params(model.quantizer.embed(g.expand(10, 1, 2))), target
            )
            + model.prior_log_prob(g[None])
            for g in grids
        ]
    )  # (9, B)
    exact = torch.logsumexp(terms, 0)
    bound = model.log_prob(x)
    assert torch.all(bound <= exact + 1e-9)
    codes = model.code_indices(x).view(10, 2)
    torch.testing.assert_close(bound, terms[codes[:, 0] * 3 + codes[:, 1], torch.arange(10)])


@torch.no_grad()
def test_uniform_prior_bound_is_the_reconstruction_minus_n_log_k():
    """Zero logits give the uniform prior over K codes at N positions: the bound is
    log p(x | z_q) - N log K (van den Oord et al., 2017, section 3.2)."""
    model = _small_vqvae().eval()
    head = model.prior.head[-1]
    head.weight.zero_()
    head.bias.zero_()
    x = torch.randint(0, 5, (7, 1, 4, 4)).double()
    codes = model.encode(x)
    log_likelihood = model.likelihood.log_prob(
        model._decoder_params(codes.view(-1, *model.grid_shape)),
        model.likelihood.target(x.flatten(1)),
    )
    n, k = 4, 6
    torch.testing.assert_close(model.log_prob(x), log_likelihood - n * math.log(k))


def test_the_bound_reads_levels_so_dequantisation_noise_changes_nothing(digits):
    """A discrete likelihood's density is constant on each level's bin, and the encoder reads
    the level: the bound of a dequantised value is the bound of its level."""
    model = genlab.fit("vqvae", digits, budget="smoke", seed=0)
    assert not model.needs_dequantization
    x = digits.x_test[:16]
    noisy = x + torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(noisy), model.log_prob(x))
    assert model.code_bits == 4 * math.log2(16)  # the smoke budget: a 2x2 grid of 16 codes


# ---------------------------------------------------------------------- training


def test_usage_and_the_bound_terms_are_logged_and_the_autoencoder_freezes(digits, tmp_path):
    model = genlab.fit("vqvae", digits, budget="smoke", seed=0, out=tmp_path / "run")
    records = [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    assert records
    for record in records:
        assert 0 < record["train_code_usage"] <= 1 and 0 < record["val_code_usage"] <= 1
        assert 1 <= record["train_code_perplexity"] <= 16
        assert record["code_bits"] == model.code_bits
        assert record["prior_bits"] > 0
    # after autoencoder_steps only the prior moves
    from genlab.train import Optimizers, TrainConfig

    assert model.autoencoder_frozen
    model.train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("prior")}
    prior = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("prior.")}
    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1)))
    model.training_step(digits.x_train[:64], optimizers, torch.Generator().manual_seed(0))
    state = model.state_dict()
    for key, value in frozen.items():
        if key not in ("steps_done", "epoch_counts"):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    assert any(not torch.equal(state[k], v) for k, v in prior.items())


def _fit_keeping_encoders(data, run, **settings):
    """A smoke VQ-VAE validated every 5 steps at lr 3e-2 (a noisy autoencoder, whose last
    validation of a stage need not be its best); returns the model, the validation losses and
    the encoder's weights at each validation, by step."""
    encoders: dict[int, dict[str, torch.Tensor]] = {}

    def keep_encoder(step: int, model: genlab.models.GenerativeModel) -> None:
        encoders[step] = {k: v.clone() for k, v in model.encoder.state_dict().items()}

    model = genlab.fit(
        "vqvae", data, budget="smoke", seed=0, out=run, eval_every=5, lr=3e-2,
        callback=keep_encoder, **settings,
    )  # fmt: skip
    losses = {r["step"]: r["loss"] for r in read_metrics(run) if r["split"] == "val"}
    return model, losses, encoders


def test_the_prior_stage_starts_from_the_best_autoencoder_and_selects_within_itself(
    digits, tmp_path
):
    """After ``autoencoder_steps`` the trainer restores the weights of the best validation so far
    (the autoencoder the prior then learns alone), and selection starts afresh: the final
    encoder is that of the first stage's best validation, the final prior a later one."""
    model, losses, encoders = _fit_keeping_encoders(digits, tmp_path / "run")
    stage_end = model.config.autoencoder_steps
    first_stage = {step: loss for step, loss in losses.items() if step <= stage_end}
    best_first = min(first_stage, key=first_stage.get)
    assert best_first != stage_end  # else the restore would change nothing (the test is moot)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, encoders[best_first][key], rtol=0, atol=0, msg=key)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    second_stage = {step: loss for step, loss in losses.items() if step > stage_end}
    assert summary["best_step"] == min(second_stage, key=second_stage.get)
    assert summary["best_score"] == min(second_stage.values())
    assert model.autoencoder_frozen


def test_early_stopping_ends_the_autoencoders_stage_and_the_prior_trains_on(digits, tmp_path):
    """Patience runs out in the first stage (validation at step 20 worse than at 15 with this
    lr): the weights of step 15 are restored, the prior trains alone, and training goes on."""
    model, losses, encoders = _fit_keeping_encoders(digits, tmp_path / "run", patience=1)
    assert losses[20] > losses[15] < losses[10]  # the first stage's early stop, at step 20
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, encoders[15][key], rtol=0, atol=0, msg=key)
    assert model.autoencoder_frozen and max(losses) > 20  # the prior's stage was validated
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best_step"] > 20


def test_a_run_saved_before_the_stage_buffer_loads_in_its_stage():
    """Old state dicts have no ``prior_only``: the stage is read off ``steps_done``."""
    model = _small_vqvae()
    for done, frozen in ((0, False), (model.config.autoencoder_steps, True)):
        state = {k: v for k, v in model.state_dict().items() if k != "prior_only"}
        state["steps_done"] = torch.tensor(done)
        assert bool(model.upgrade_state(state)["prior_only"]) is frozen


def test_loss_codebook_learns_from_the_codebook_loss_alone():
    """With codebook_update="loss" the codebook is a parameter whose gradient in a training step
    is exactly that of the codebook loss, 2 (e_k - z_e) summed over the vectors assigned to k
    (per example of the batch): neither the reconstruction nor the commitment reaches it."""
    from genlab.train import Optimizers, TrainConfig

    model = _small_vqvae(update="loss", revive_threshold=0.0)
    x = torch.randint(0, 5, (8, 1, 4, 4)).double()
    z_e = model._encode(x).detach()
    indices, _ = model.quantizer(z_e)
    e = model.quantizer.codebook.detach().clone()
    flat, index = z_e.movedim(1, -1).reshape(-1, 3), indices.flatten()
    expected = torch.zeros_like(e).index_add_(0, index, 2 * (e[index] - flat)) / len(x)
    grads = {}
    model.quantizer.codebook.register_post_accumulate_grad_hook(
        lambda p: grads.__setitem__("codebook", p.grad.clone())
    )
    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1)))
    model.training_step(x, optimizers, torch.Generator().manual_seed(0))
    torch.testing.assert_close(grads["codebook"], expected)


# ---------------------------------------------------------------------- completion and config


def test_completion_keeps_the_codes_of_the_observed_regions(digits):
    model = _small_vqvae()
    top_half = torch.zeros(1, 4, 4, dtype=torch.bool)
    top_half[:, :2] = True
    assert model.observed_code_prefix(top_half.flatten()) == 2  # the top row of the 2x2 grid
    top_left = torch.zeros(1, 4, 4, dtype=torch.bool)
    top_left[:, :2, :2] = True
    assert model.observed_code_prefix(top_left.flatten()) == 1
    assert model.observed_code_prefix(torch.zeros(16, dtype=torch.bool)) == 0
    mlp = _vector_vqvae()
    assert mlp.observed_code_prefix(torch.tensor([True, True, False])) == 0  # codes read all


def test_config_errors():
    info = DataInfo("tiny", (1, 8, 8), "image", levels=5, value_range=(0.0, 4.0))
    with pytest.raises(ConfigError, match="choose one of 8x8, 4x4, 2x2, 1x1"):
        VQVAE(VQVAEConfig(grid=(3, 3)), info)
    with pytest.raises(ConfigError, match="needs image data"):
        VQVAE(VQVAEConfig(architecture="conv"), DataInfo("v", (4,), "vector"))
    with pytest.raises(ConfigError, match="codebook_update"):
        VQVAEConfig(codebook_update="kmeans")
