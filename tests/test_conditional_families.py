"""Class-conditional diffusion (classifier-free guidance) and autoregressive models
(``conditional=true``): the guidance formula, label dropout, exact normalisation per label,
masks that still hold with the label path, and behaviour that only a model reading its labels
has (the conditional VAE, flow and GAN are tested in ``test_context.py`` and
``test_context_families.py``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import genlab
import genlab.api
from genlab.cli import main
from genlab.data.dataset import DataInfo, Dataset
from genlab.errors import ConfigError, DataError, UnsupportedCapability
from genlab.metrics.conditioning import class_route
from genlab.models.autoregressive import Autoregressive, AutoregressiveConfig
from genlab.models.diffusion import Diffusion, DiffusionConfig
from genlab.nn.denoisers import LabelEmbedding
from genlab.nn.made import MADE
from genlab.nn.pixelcnn import GatedPixelCNN
from genlab.samplers.diffusion import Denoised, guide
from tests.conformance import check_generative_model, check_gradients

# --------------------------------------------------------------------------- diffusion


def randomise_(model: torch.nn.Module, scale: float = 0.3) -> None:
    """Non-trivial weights (the zero-initialised heads and label rows included)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def test_guide_is_the_classifier_free_formula():
    """w = 0 is the conditional prediction; w > 0 is (1 + w) cond - w uncond, in eps and x0."""
    shape = (5, 3)
    cond, uncond = (
        Denoised(torch.randn(shape), torch.randn(shape), torch.randn(shape)) for _ in range(2)
    )
    same = guide(cond, uncond, 0.0)
    for a, b in ((same.x0, cond.x0), (same.eps, cond.eps), (same.log_var, cond.log_var)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    w = 2.5
    guided = guide(cond, uncond, w)
    torch.testing.assert_close(guided.eps, 3.5 * cond.eps - 2.5 * uncond.eps)
    torch.testing.assert_close(guided.x0, 3.5 * cond.x0 - 2.5 * uncond.x0)
    torch.testing.assert_close(guided.log_var, cond.log_var)  # the conditional variance


def conditional_diffusion(info: DataInfo, **settings) -> Diffusion:
    config = DiffusionConfig(
        conditional=True, timesteps=20, ddim_steps=5, hidden=(16,), embed=8, **settings
    )
    model = Diffusion(config, info).double().eval()
    randomise_(model.averaged)
    return model


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@torch.no_grad()
def test_guidance_in_epsilon_is_guidance_in_x0_whatever_is_predicted(prediction):
    """The model's guided process is guide() of its own predictions given y and given the null
    token, and the guided x0 is the one the guided eps implies (x_t fixed): the combination
    has the same meaning in either space."""
    info = DataInfo("v", (4,), "vector", n_classes=3)
    model = conditional_diffusion(
        info, prediction=prediction, variance="fixed_small", loss="simple"
    )
    net, schedule = model.averaged["denoiser"], model.schedule
    xt, t = torch.randn(6, 4, dtype=torch.double), torch.tensor([0, 3, 7, 11, 15, 19])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    w = 1.7
    guided = model.process_given(labels, w).denoise(xt, t)
    cond = model.denoised_by(net, xt, t, labels)
    uncond = model.denoised_by(net, xt, t, torch.full_like(labels, 3))  # the null token
    assert not torch.allclose(cond.eps, uncond.eps)  # the label is read
    expected = guide(cond, uncond, w)
    torch.testing.assert_close(guided.eps, expected.eps)
    torch.testing.assert_close(guided.x0, schedule.x0_from_epsilon(xt, t, guided.eps))
    torch.testing.assert_close(model.process_given(labels, 0.0).denoise(xt, t).eps, cond.eps)


@torch.no_grad()
def test_a_bound_stacks_copies_of_the_batch_with_their_labels():
    """The bound evaluates timesteps in passes of stacked copies: each example's value must be
    the one of its own label (as if evaluated alone)."""
    info = DataInfo("v", (4,), "vector", n_classes=3)
    model = conditional_diffusion(info, variance="fixed_small", loss="simple")
    x, y = torch.randn(3, 4, dtype=torch.double), torch.tensor([2, 0, 1])
    together = model.log_prob(x, context=y)
    alone = torch.cat([model.log_prob(x[i : i + 1], context=y[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(together, model.log_prob(x, context=(y + 1) % 3))


def test_label_dropout_draws_the_null_token_at_its_rate():
    embedding = LabelEmbedding(10, 4)
    labels = torch.arange(200_000) % 10
    dropped = embedding.drop(labels, 0.1, torch.Generator().manual_seed(0))
    null = dropped == 10
    # binomial standard error sqrt(0.1 * 0.9 / 200,000) = 0.00067: 5 of them
    assert abs(float(null.float().mean()) - 0.1) < 0.0034
    assert torch.equal(dropped[~null], labels[~null])  # the others are kept, untouched
    assert not bool((embedding.drop(labels, 0.0, None) == 10).any())


def test_training_replaces_labels_by_the_null_token_at_label_dropout(monkeypatch):
    """What the denoiser is given in training: the batch's labels, label_dropout of them null."""
    info = DataInfo("v", (2,), "vector", n_classes=4)
    model = Diffusion(
        DiffusionConfig(
            conditional=True, label_dropout=0.3, timesteps=10, ddim_steps=5, hidden=(8,), embed=8
        ),
        info,
    )
    seen = []
    forward = type(model.denoiser).forward
    monkeypatch.setattr(
        type(model.denoiser),
        "forward",
        lambda net, x, t, labels=None: seen.append(labels) or forward(net, x, t, labels),
    )
    from genlab.train import Optimizers, TrainConfig

    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1)))
    y = torch.arange(2000) % 4
    generator = torch.Generator().manual_seed(0)
    model.prepare(torch.randn(100, 2))
    model.training_step(torch.randn(2000, 2), optimizers, generator, context=y)
    (labels,) = seen
    null = labels == 4
    assert abs(float(null.float().mean()) - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 2000)
    assert torch.equal(labels[~null], y[~null])


@pytest.mark.parametrize("architecture", ["mlp", "unet"])
def test_conditional_diffusion_conforms(architecture, digits, tmp_path):
    model = genlab.fit(
        "diffusion", digits, budget="smoke", conditional=True, architecture=architecture, seed=0
    )
    assert model.capabilities.context and type(model).capabilities.context
    check_generative_model(model, digits, tmp_path)
    y = digits.y_test[:4]
    with torch.no_grad():  # deterministic DDIM from the same x_T: continuous outputs
        guided, plain = (
            model.sample(4, context=y, guidance=w, method="ddim", generator=torch.Generator())
            for w in (3.0, 0.0)
        )
    assert guided.shape == (4, 1, 8, 8) and not torch.allclose(guided, plain)
    fresh = genlab.api.build_model("diffusion", model.config, digits.info)
    fresh.prepare(digits.x_train, context=digits.y_train)
    check_gradients(fresh, digits)


def test_unconditional_diffusion_has_no_label_path(digits):
    model = genlab.fit("diffusion", digits, budget="smoke", steps=2)
    assert not model.capabilities.context
    assert not any("label" in name for name in model.state_dict())
    with pytest.raises(UnsupportedCapability, match="guidance= needs conditional=true"):
        model.sample(2, guidance=1.0)


def test_conditional_diffusion_learns_each_label_and_guidance_sharpens_it(labelled_ring):
    """On the labelled ring (8 modes, chance 1/8), a briefly trained conditional model's bound
    prefers the true label by many nats, its unguided samples mostly sit nearest the asked
    mode, and guidance raises that share (0.65 at w = 0, 0.87 at w = 1, 0.95 at w = 3
    measured)."""
    model = genlab.fit(
        "diffusion", labelled_ring, conditional=True, steps=1000, timesteps=50, ddim_steps=10,
        hidden=(128, 128), embed=32, eval_every=500, seed=0,
    )  # fmt: skip
    x, y = labelled_ring.x_test[:200], labelled_ring.y_test[:200]
    centres = torch.tensor(labelled_ring.info.mode_centres)
    asked = torch.arange(800) % 8
    share = {}
    with torch.no_grad():
        gap = model.log_prob(x, context=y) - model.log_prob(x, context=(y + 4) % 8)
        for w in (0.0, 3.0):
            draws = model.sample(
                800, context=asked, guidance=w, generator=torch.Generator().manual_seed(0)
            )
            share[w] = float((torch.cdist(draws, centres).argmin(1) == asked).float().mean())
    assert float(gap.mean()) > 5, float(gap.mean())
    assert share[0.0] > 0.5, share
    assert share[3.0] > share[0.0] + 0.15, share


# --------------------------------------------------------------------------- autoregressive


def tiny_info(shape=(3,), levels=3, kind="vector", classes=2) -> DataInfo:
    return DataInfo(
        "tiny", shape, kind, levels=levels, value_range=(0.0, levels - 1.0), n_classes=classes
    )


def build(info: DataInfo, **settings) -> Autoregressive:
    model = Autoregressive(AutoregressiveConfig(conditional=True, **settings), info)
    model = model.double().eval()
    randomise_(model)
    return model


def all_configurations(info: DataInfo) -> torch.Tensor:
    grid = list(itertools.product(range(info.levels), repeat=info.n_features))
    return torch.tensor(grid, dtype=torch.double).view(-1, *info.event_shape)


TINY = [
    ({"architecture": "made", "hidden": (8,)}, tiny_info()),
    ({"architecture": "made", "hidden": (8, 8), "n_orders": 3, "order": "random"}, tiny_info()),
    (
        {"architecture": "pixelcnn", "channels": 4, "n_layers": 1},
        tiny_info((1, 2, 2), kind="image"),
    ),
]


@pytest.mark.parametrize(("settings", "info"), TINY)
@torch.no_grad()
def test_conditional_autoregressive_sums_to_one_for_every_label(settings, info):
    """Exact enumeration: sum over every x of p(x | y) is 1 for each label, and the labels give
    different distributions."""
    model = build(info, **settings)
    x = all_configurations(info)
    log_step = info.n_features * math.log(info.level_step)
    by_label = [model.log_prob(x, context=torch.full((len(x),), c)) + log_step for c in range(2)]
    for log_p in by_label:
        assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-10)
    assert float((by_label[0] - by_label[1]).abs().max()) > 1e-3


@torch.no_grad()
def test_conditional_samples_follow_the_enumerated_law_of_their_label():
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8,), n_orders=2, order="random")
    x = all_configurations(info)
    n = 20_000
    for c in range(2):
        truth = torch.softmax(model.log_prob(x, context=torch.full((len(x),), c)), 0)
        draws = model.sample(
            n, context=torch.full((n,), c), generator=torch.Generator().manual_seed(c)
        )
        index = (draws * torch.tensor([9.0, 3.0, 1.0], dtype=draws.dtype)).sum(1).long()
        frequency = torch.bincount(index, minlength=27).double() / n
        # standard error <= 0.0036 per configuration: about 4 of them
        assert float((frequency - truth).abs().max()) < 0.015


def test_conditional_made_reads_the_label_everywhere_and_data_only_before():
    """Jacobians: output i reads data input j only if order_j < order_i, and every output (the
    first in the order too) reads the context inputs."""
    d, classes = 5, 3
    order = torch.randperm(d) + 1
    made = MADE(order, (20, 20), n_outputs=2, activation="tanh", context_features=classes)
    made = made.double()
    inputs = torch.randn(d + classes, dtype=torch.double)
    jacobian = torch.autograd.functional.jacobian(lambda v: made(v[None])[0], inputs)
    allowed = order[:, None] > order[None, :]
    for block in jacobian.view(2, d, d + classes):
        assert torch.all(block[:, :d][~allowed] == 0)
        assert torch.all(block[:, d:] != 0)


def test_conditional_pixelcnn_stays_causal_and_reads_the_label_at_every_pixel():
    """Changing pixel i changes no output at or before i; every output reads the label."""
    h = w = 5
    net = GatedPixelCNN(n_outputs=1, channels=8, n_layers=5, context_features=4).double()
    randomise_(net, 0.1)
    x = torch.randn(1, 1, h, w, dtype=torch.double)
    label = torch.nn.functional.one_hot(torch.tensor([2]), 4).double()
    jacobian = torch.autograd.functional.jacobian(lambda v: net(v, label)[0, 0], x)
    jacobian = jacobian.view(h * w, h * w)
    earlier = torch.arange(h * w)[:, None] > torch.arange(h * w)[None, :]
    assert torch.all(jacobian[~earlier] == 0)
    assert torch.all(jacobian[earlier] != 0)
    by_label = torch.autograd.functional.jacobian(lambda c: net(x, c)[0, 0], label)
    assert torch.all(by_label.view(h * w, 4).abs().sum(1) > 0)


def label_dependent_data(n: int = 3000) -> Dataset:
    """Three binary-ish coordinates whose law depends on the label: label c puts each
    coordinate at level c with probability 0.8 (levels 0..2)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(3, (n,), generator=g)
    noise = torch.randint(3, (n, 3), generator=g)
    keep = torch.rand(n, 3, generator=g) < 0.8
    x = torch.where(keep, y[:, None], noise).float()
    info = tiny_info(classes=3)
    cut = n * 4 // 5
    return Dataset(x[:cut], x[cut:], info, y[:cut], y[cut:])


def test_conditional_made_learns_what_the_label_says():
    data = label_dependent_data()
    model = genlab.fit(
        "autoregressive", data, conditional=True, architecture="made", hidden=(32,), steps=400,
        seed=0,
    )  # fmt: skip
    x, y = data.x_test, data.y_test
    with torch.no_grad():
        right = model.log_prob(x, context=y)
        wrong = model.log_prob(x, context=(y + 1) % 3)
        fit = torch.stack([model.log_prob(x, context=torch.full_like(y, c)) for c in range(3)])
    # the truth: log(0.8 + 0.2/3) - log(0.2/3) = 2.56 nats per coordinate at the label, 6.1
    # in expectation; Bayes' rule with the true law recovers the label 95% of the time
    assert float((right - wrong).mean()) > 3, float((right - wrong).mean())
    assert float((fit.argmax(0) == y).float().mean()) > 0.85


@pytest.mark.parametrize(
    "settings", [{}, {"architecture": "made", "hidden": (64,), "n_orders": 2}]
)
def test_conditional_autoregressive_conforms(settings, digits, tmp_path):
    model = genlab.fit(
        "autoregressive", digits, budget="smoke", conditional=True, seed=0, **settings
    )
    assert model.capabilities.context
    check_generative_model(model, digits, tmp_path)
    fresh = genlab.api.build_model("autoregressive", model.config, digits.info)
    fresh.prepare(digits.x_train, context=digits.y_train)
    check_gradients(fresh, digits)


@torch.no_grad()
def test_conditional_completion_is_exact_given_the_label():
    """Completions of an observed first coordinate given a label against p(x_u | x_o, y)."""
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8, 8))
    grid = all_configurations(info)
    mask = torch.tensor([True, False, False])
    n = 20_000
    for c in range(2):
        log_p = model.log_prob(grid, context=torch.full((len(grid),), c))
        truth = torch.softmax(log_p[grid[:, 0] == 2], 0)
        draws = model.sample_conditional(
            grid[-1:], mask, n, generator=torch.Generator().manual_seed(0),
            context=torch.tensor([c]),
        )  # fmt: skip
        flat = draws[:, 0]
        index = (flat[:, 1:] * torch.tensor([3.0, 1.0], dtype=flat.dtype)).sum(1).long()
        frequency = torch.bincount(index, minlength=9).double() / n
        assert float((frequency - truth).abs().max()) < 0.018


# --------------------------------------------------------------------------- both


@pytest.mark.parametrize("family", ["diffusion", "autoregressive"])
def test_conditional_families_need_labels_and_ask_for_them(family, ring, digits):
    with pytest.raises(ConfigError, match="no labels"):
        genlab.fit(family, ring, conditional=True, steps=2)
    model = genlab.fit(family, digits, budget="smoke", conditional=True, steps=2)
    with pytest.raises(DataError, match="pass the labels as context="):
        model.sample(2)
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        model.sample(2, context=torch.tensor([3, 10]))
    plain = genlab.fit(family, digits, budget="smoke", steps=2)
    with pytest.raises(UnsupportedCapability, match="takes no context="):
        plain.sample(2, context=torch.tensor([3, 4]))


@pytest.mark.parametrize("family", ["diffusion", "autoregressive"])
def test_sample_class_through_the_api_and_the_command_line(family, tmp_path, capsys):
    run = tmp_path / "run"
    model = genlab.fit(family, "digits", out=run, budget="smoke", conditional=True, seed=0)
    assert class_route(model, None) == "context"
    assert genlab.sample_class(model, 3, 4).shape == (4, 1, 8, 8)
    out = tmp_path / "sevens.npy"
    code = main(["sample", str(run), "--class", "7", "-n", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert np.load(out).shape == (3, 1, 8, 8)
