"""Autoregressive models of vectors and images: masks (autograd Jacobians, the PixelCNN's blind
spot), normalisation by enumeration, exact conditionals against enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genlab
from genlab.data.dataset import DataInfo, Dataset
from genlab.errors import UnsupportedCapability
from genlab.models.autoregressive import Autoregressive, AutoregressiveConfig
from genlab.nn.made import MADE, hidden_degrees, made_masks
from genlab.nn.pixelcnn import (
    GatedPixelCNN,
    MaskedConv2d,
    gated_unit,
    horizontal_mask,
    vertical_mask,
)
from genlab.samplers import sample_in_order


def tiny_info(shape=(3,), levels=3, kind="vector") -> DataInfo:
    return DataInfo("tiny", shape, kind, levels=levels, value_range=(0.0, levels - 1.0))


def build(info: DataInfo, **settings) -> Autoregressive:
    torch.manual_seed(0)
    model = Autoregressive(AutoregressiveConfig(**settings), info).double().eval()
    with torch.no_grad():  # random, non-trivial weights
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def all_configurations(info: DataInfo) -> torch.Tensor:
    levels = range(info.levels)
    grid = torch.tensor(
        list(itertools.product(levels, repeat=info.n_features)), dtype=torch.double
    )
    return grid.view(-1, *info.event_shape)


@pytest.mark.parametrize("connectivity", ["fixed", "random"])
def test_made_output_depends_only_on_earlier_inputs(connectivity):
    """Jacobian of output i w.r.t. input j is exactly 0 unless order_j < order_i."""
    d, hidden = 6, (16, 16)
    order = torch.randperm(d) + 1
    made = MADE(order, hidden, n_outputs=2, activation="tanh").double()
    if connectivity == "random":
        degrees = hidden_degrees(d, hidden, torch.Generator().manual_seed(1))
        made.set_masks(made_masks(order, degrees, 2))
    x = torch.randn(d, dtype=torch.double)
    jacobian = torch.autograd.functional.jacobian(lambda v: made(v[None])[0], x)  # (2D, D)
    allowed = order[:, None] > order[None, :]  # (output i, input j)
    for block in jacobian.view(2, d, d):
        assert torch.all(block[~allowed] == 0)
        if connectivity == "fixed":  # random degrees may leave a path out; these cover all
            assert torch.all(block[allowed] != 0)  # every earlier input is read


def test_gated_unit_is_tanh_times_sigmoid_in_value_and_gradient():
    value = torch.linspace(-40, 40, 2001, dtype=torch.float64).requires_grad_(True)
    gate = torch.linspace(3, -3, 2001, dtype=torch.float64).requires_grad_(True)
    ours = gated_unit(value, gate)
    reference = torch.tanh(value) * torch.sigmoid(gate)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-14)
    grads = torch.autograd.grad(ours.sum(), (value, gate))
    expected = torch.autograd.grad(reference.sum(), (value, gate))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("make_mask", [vertical_mask, horizontal_mask])
@pytest.mark.parametrize("type_a", [True, False])
def test_masked_convolution_is_the_whole_masked_kernel_with_same_padding(
    kernel, dilation, make_mask, type_a
):
    """Run on the box around the mask's ones, it equals the full kernel times the mask with
    'same' zero padding, at every output (an odd-sized, non-square input)."""
    g = torch.Generator().manual_seed(0)
    mask = make_mask(kernel, type_a)
    conv = MaskedConv2d(3, 4, mask, dilation)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    x = torch.randn(2, 3, 9, 7, generator=g, dtype=torch.float64)
    conv = conv.double()
    kh, kw = mask.shape
    padding = (dilation * (kh // 2), dilation * (kw // 2))
    expected = torch.nn.functional.conv2d(
        x, conv.weight * conv.mask, conv.bias, padding=padding, dilation=dilation
    )
    torch.testing.assert_close(conv(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("size", "dilation_cycle"), [(6, 1), (9, 3)])
def test_pixelcnn_is_causal_without_blind_spot(size, dilation_cycle):
    """Output (i, j) ignores pixel (i, j) and every later pixel, and reads every earlier one;
    dilations 1, 2, 4, 1, 2, 4 too (their taps interleave: no gaps)."""
    h = w = size
    net = GatedPixelCNN(n_outputs=1, channels=8, n_layers=6, dilation_cycle=dilation_cycle)
    net = net.double()
    x = torch.randn(1, 1, h, w, dtype=torch.double)
    jacobian = torch.autograd.functional.jacobian(lambda v: net(v)[0, 0], x)  # (H, W, 1, 1, H, W)
    jacobian = jacobian.view(h * w, h * w)
    earlier = torch.arange(h * w)[:, None] > torch.arange(h * w)[None, :]
    assert torch.all(jacobian[~earlier] == 0)
    assert torch.all(jacobian[earlier] != 0), "a blind spot: an earlier pixel is never read"


@pytest.mark.parametrize(
    ("kernel", "n_layers", "dilation_cycle", "rows_above"),
    [(3, 2, 1, 3), (5, 1, 1, 4), (3, 3, 2, 5)],  # dilations 1, 2, 1: 1 + 1 + 2 + 1 rows
)
def test_pixelcnn_pixel_from_the_rows_and_columns_it_reads_is_the_whole_images(
    kernel, n_layers, dilation_cycle, rows_above
):
    """forward_pixel runs the vertical stack on rows i - rows_above .. i and the horizontal
    one on columns j - columns_left .. j of row i only: the same numbers as the whole image
    (the crops' zero padding never reaches pixel (i, j)'s dependencies)."""
    torch.manual_seed(0)
    net = GatedPixelCNN(n_outputs=3, channels=4, n_layers=n_layers, kernel=kernel,
                        context_features=2, dilation_cycle=dilation_cycle).double()  # fmt: skip
    x, context = torch.randn(2, 1, 11, 12, dtype=torch.double), torch.randn(2, 2).double()
    assert net.rows_above == net.columns_left == rows_above
    assert 12 > net.columns_left + 1  # some columns cropped away
    whole = net(x, context)
    for row in range(11):
        # the vertical stack reads the rows above alone: one computation serves the whole row
        changed = x.clone()
        changed[:, :, row:] = torch.randn_like(changed[:, :, row:])
        links = net.row_links(changed, row, context)
        for link, expected in zip(links, net.row_links(x, row, context), strict=True):
            torch.testing.assert_close(link, expected)
        for column in range(12):
            expected = whole[:, :, row, column]
            torch.testing.assert_close(net.forward_pixel(x, row, column, context), expected)
            pixel = net.forward_pixel(x, row, column, context, links)
            torch.testing.assert_close(pixel, expected)


@torch.no_grad()
def test_pixelcnn_samples_are_those_of_whole_image_passes():
    """The sampler's row passes draw the same pixels, from the same generator, as passes over
    the whole image would."""
    info = tiny_info((1, 7, 3), levels=4, kind="image")
    model = build(info, architecture="pixelcnn", channels=4, n_layers=1)
    assert model.net.rows_above < 7
    fast = model.sample(6, generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    torch.randint(1, (6,), generator=generator)  # sample's draw of each row's member
    whole = sample_in_order(
        lambda current, d: model._params(model.likelihood.target(current)),
        model.likelihood.sample_coordinate,
        torch.zeros(6, 21, dtype=torch.double),
        model.orders[0],
        generator=generator,
    )
    torch.testing.assert_close(fast.flatten(1).double(), whole)  # levels: exact


@pytest.mark.parametrize(
    "settings",
    [
        {"architecture": "made", "hidden": (8,)},
        {"architecture": "made", "hidden": (8, 8), "n_orders": 3, "order": "random"},
        {"architecture": "made", "hidden": (8,), "likelihood": "discretized_logistic_mixture"},
    ],
)
@torch.no_grad()
def test_made_sums_to_one_over_every_configuration(settings):
    info = tiny_info()
    model = build(info, **settings)
    x = all_configurations(info)  # 27 configurations
    log_p = model.log_prob(x) + info.n_features * math.log(info.level_step)
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-10)


@torch.no_grad()
def test_pixelcnn_sums_to_one_over_every_image():
    info = tiny_info((1, 2, 2), kind="image")
    model = build(info, architecture="pixelcnn", channels=4, n_layers=1)
    log_p = model.log_prob(all_configurations(info))  # 81 images, step 1
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-10)


@torch.no_grad()
def test_log_prob_in_passes_is_the_whole_batchs(monkeypatch):
    """An ensemble of PixelCNNs scores a batch in passes of at most PASS_VALUES parameters
    (here 2 images, 9 levels x 4 pixels each) with the whole batch's result."""
    import genlab.nn.likelihoods as likelihoods_module

    info = tiny_info((1, 2, 2), levels=9, kind="image")
    model = build(info, architecture="pixelcnn", channels=4, n_layers=1)
    x = all_configurations(tiny_info((1, 2, 2), kind="image"))[:7] * 4  # levels 0, 4, 8
    whole = model.log_prob(x)
    monkeypatch.setattr(likelihoods_module, "PASS_VALUES", 2 * 9 * 4)
    assert model.likelihood.rows_per_pass() == 2
    torch.testing.assert_close(model.log_prob(x), whole)


@torch.no_grad()
def test_ensemble_is_the_mixture_in_probability_not_of_logits():
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8,), n_orders=3, order="random")
    x = all_configurations(info)
    members = model._member_log_probs(model.likelihood.checked_target(x))  # (3, 27)
    mixture = torch.logsumexp(members, 0) - math.log(3)
    torch.testing.assert_close(model.log_prob(x), mixture)
    assert not torch.allclose(members[0], members[1])  # the members differ


@pytest.mark.parametrize(
    ("settings", "info"),
    [
        ({"architecture": "made", "hidden": (8, 8), "n_orders": 3}, tiny_info()),
        (
            {"architecture": "pixelcnn", "channels": 4, "n_layers": 1},
            tiny_info((1, 2, 2), kind="image"),
        ),
    ],
)
@torch.no_grad()
def test_exact_conditional_matches_enumeration(settings, info):
    """Completions of an observed prefix against p(x_u | x_o) enumerated from log_prob."""
    model = build(info, **settings)
    grid = all_configurations(info)
    log_p = model.log_prob(grid)
    mask = torch.zeros(info.event_shape, dtype=torch.bool)
    mask.view(-1)[0] = True  # the first coordinate in every ordering (all natural)
    x = grid[-1:].clone()  # observe x_0 = 2
    consistent = grid.flatten(1)[:, 0] == 2
    truth = torch.softmax(log_p[consistent], 0)
    n = 20_000
    draws = model.sample_conditional(x, mask, n, generator=torch.Generator().manual_seed(0))
    flat = draws[:, 0].flatten(1)
    assert torch.all(flat[:, 0] == 2)
    index = (flat[:, 1:] * info.levels ** torch.arange(flat.shape[1] - 2, -1, -1)).sum(1).long()
    frequency = torch.bincount(index, minlength=len(truth)).double() / n
    # standard error <= 0.0036 per cell: 5 of them
    assert float((frequency - truth).abs().max()) < 0.018


def test_non_prefix_mask_is_refused_with_a_reason():
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8,), order="random", n_orders=2)
    observed = int(model.orders[0][-1])  # last in the first member's order: never a prefix of it
    mask = torch.zeros(3, dtype=torch.bool)
    mask[observed] = True
    with pytest.raises(UnsupportedCapability, match="observed coordinates to come first"):
        model.sample_conditional(torch.zeros(1, 3, dtype=torch.double), mask, 1)


@torch.no_grad()
def test_samples_follow_the_enumerated_joint():
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8,), n_orders=2, order="random")
    truth = torch.softmax(model.log_prob(all_configurations(info)), 0)
    n = 20_000
    x = model.sample(n, generator=torch.Generator().manual_seed(1))
    index = (x * torch.tensor([9.0, 3.0, 1.0], dtype=x.dtype)).sum(1).long()
    frequency = torch.bincount(index, minlength=27).double() / n
    assert float((frequency - truth).abs().max()) < 0.015


def test_continuous_data_gets_a_gaussian_mixture_and_a_normalised_density():
    """On 1-D real data the MADE's density (a Gaussian mixture) integrates to 1 on a grid."""
    x_train = torch.randn(500, 1) * 2 + 1
    info = DataInfo("line", (1,), "vector", value_range=(-10.0, 10.0))
    data = Dataset(x_train, x_train[:50], info)
    model = genlab.fit("autoregressive", data, steps=50, hidden=(8,))
    assert model.likelihood_name == "gaussian_mixture"
    grid = torch.linspace(-30, 30, 20_001)[:, None]
    with torch.no_grad():
        mass = float(torch.trapezoid(model.log_prob(grid).exp(), grid[:, 0]))
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_digits_model_reads_levels_and_beats_uniform(digits):
    model = genlab.fit("autoregressive", digits, budget="smoke")
    assert not model.needs_dequantization  # categorical conditionals read the levels
    result = genlab.evaluate(model, digits)
    assert result["bits_per_dim"] < math.log2(17) - 0.5


def test_draw_categorical_by_inversion_matches_the_probabilities():
    from genlab.samplers import draw_categorical

    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0]]).expand(40_000, 4)
    draws = draw_categorical(logits, torch.Generator().manual_seed(0))
    frequency = torch.bincount(draws, minlength=4).double() / len(draws)
    torch.testing.assert_close(frequency, torch.softmax(logits[0].double(), 0), atol=0.008, rtol=0)


def test_prefix_length():
    from genlab.samplers import prefix_length

    order = torch.tensor([2, 0, 1, 3])
    assert prefix_length(torch.tensor([True, False, True, False]), order) == 2
    assert prefix_length(torch.tensor([False, True, False, False]), order) is None
    assert prefix_length(torch.zeros(4, dtype=torch.bool), order) == 0


@torch.no_grad()
def test_tempered_samples_follow_the_product_of_tempered_conditionals():
    """sample(temperature=T) of an ensemble of two random orders follows, by enumeration of
    the 27 configurations, (1/K) sum_k prod_d softmax(l_kd(x) / T)[x_d] (each member's
    conditionals tempered and renormalised), not the model's own joint."""
    info = tiny_info()
    model = build(info, architecture="made", hidden=(8,), n_orders=2, order="random")
    x = all_configurations(info)  # (27, 3)
    temperature = 0.5
    log_q = torch.stack(
        [
            (model._params(x, k) / temperature).log_softmax(1).gather(1, x.long()[:, None])[:, 0]
            for k in range(2)
        ]
    ).sum(-1)  # (K, 27)
    tempered = log_q.exp().mean(0)
    own = torch.softmax(model.log_prob(x), 0)
    n = 20_000
    draws = model.sample(n, generator=torch.Generator().manual_seed(1), temperature=temperature)
    index = (draws * torch.tensor([9.0, 3.0, 1.0], dtype=draws.dtype)).sum(1).long()
    frequency = torch.bincount(index, minlength=27).double() / n
    assert float(tempered.sum()) == pytest.approx(1.0)
    assert float((frequency - tempered).abs().max()) < 0.015
    assert float((own - tempered).abs().max()) > 0.05  # far from the model's own joint


@pytest.mark.parametrize("likelihood", ["categorical", "discretized_logistic_mixture"])
def test_temperature_one_is_the_models_own_draw_and_others_are_checked(likelihood):
    """T = 1 gives the very samples of sample() with the same generator (PixelCNN); T <= 0 is
    refused, and T != 1 of a Gaussian mixture names the way out."""
    from genlab.errors import ConfigError

    info = tiny_info((1, 4, 4), levels=8, kind="image")
    model = build(info, likelihood=likelihood, channels=4, n_layers=2)
    own = model.sample(6, generator=torch.Generator().manual_seed(2))
    same = model.sample(6, generator=torch.Generator().manual_seed(2), temperature=1.0)
    cold = model.sample(6, generator=torch.Generator().manual_seed(2), temperature=0.7)
    assert torch.equal(own, same)
    assert not torch.equal(own, cold)
    with pytest.raises(ConfigError, match="temperature must be positive"):
        model.sample(2, temperature=0.0)
    real = DataInfo("line", (2,), "vector", value_range=(-1.0, 1.0))
    mixture = build(real, architecture="made", hidden=(8,))
    assert mixture.likelihood_name == "gaussian_mixture"
    with pytest.raises(ConfigError, match="use likelihood=categorical"):
        mixture.sample(2, temperature=0.7)


@torch.no_grad()
def test_autoguided_pixelcnn_samples_follow_the_guided_conditionals():
    """sample(autoguidance=w) of a PixelCNN with a guiding copy follows, by enumeration of the
    81 images of 2x2 pixels with 3 levels, prod_d softmax((1 + w) l_d(x) - w l_weak_d(x))[x_d]:
    each pixel's conditional pushed away from the copy's and renormalised."""
    info = tiny_info((1, 2, 2), kind="image")
    model = build(info, architecture="pixelcnn", channels=4, n_layers=1, guide_step=1)
    model.steps.fill_(1)  # the copy was taken (build perturbed it apart from the network)
    x = all_configurations(info)  # (81, 1, 2, 2)
    target = model.likelihood.target(x.flatten(1))
    inputs = model._inputs(target).view(-1, *info.event_shape)
    strong, weak = (net(inputs, None).flatten(2) for net in (model.net, model.guide_network))
    w = 1.5
    logits = ((1 + w) * strong - w * weak).log_softmax(1)  # (81, L, D)
    guided = logits.gather(1, target.long()[:, None])[:, 0].sum(1).exp()
    own = model.log_prob(x).exp()
    n = 20_000
    draws = model.sample(n, generator=torch.Generator().manual_seed(1), autoguidance=w)
    index = (draws.flatten(1) * torch.tensor([27.0, 9.0, 3.0, 1.0])).sum(1).long()
    frequency = torch.bincount(index, minlength=81).double() / n
    assert float(guided.sum()) == pytest.approx(1.0)
    assert float((frequency - guided).abs().max()) < 0.015
    assert float((own - guided).abs().max()) > 0.05  # far from the model's own joint
    unguided = model.sample(n, generator=torch.Generator().manual_seed(1), autoguidance=0.0)
    index = (unguided.flatten(1) * torch.tensor([27.0, 9.0, 3.0, 1.0])).sum(1).long()
    frequency = torch.bincount(index, minlength=81).double() / n
    assert float((frequency - own).abs().max()) < 0.015  # w = 0: the model's own joint


def guided_pixelcnn(digits, steps: int, **settings) -> Autoregressive:
    return genlab.fit(
        "autoregressive", digits, steps=steps, val_fraction=0.0, seed=0, channels=4, n_layers=2,
        lr_schedule="constant", guide_step=3, **settings,
    )  # fmt: skip


def test_the_pixelcnn_guiding_copy_is_the_network_at_guide_step_and_survives_the_run(
    digits, tmp_path
):
    """The copy is the network as it stood after ``guide_step`` steps (a run stopped there), the
    default weight guides the draws, and the run directory keeps both."""
    stopped = guided_pixelcnn(digits, 3)
    longer = guided_pixelcnn(digits, 6, autoguidance=2.0, out=tmp_path / "run")
    copy, at_three, last = (
        m.state_dict() for m in (longer.guide_network, stopped.net, longer.net)
    )
    assert all(torch.equal(copy[k], at_three[k]) for k in copy)
    assert not all(torch.equal(copy[k], last[k]) for k in copy)
    draw = lambda m, **o: m.sample(4, generator=torch.Generator().manual_seed(0), **o)  # noqa: E731
    assert not torch.equal(draw(longer), draw(longer, autoguidance=0.0))
    loaded = genlab.load(tmp_path / "run")
    torch.testing.assert_close(draw(loaded), draw(longer))
    assert loaded.sample_note.startswith(
        "autoguided: w = 2 away from the network at training step 3"
    )
    assert (
        genlab.fit(
            "autoregressive", digits, steps=2, val_fraction=0.0, channels=4, n_layers=2
        ).sample_note
        is None
    )


def test_pixelcnn_autoguidance_errors_and_the_short_run_warning(digits):
    from genlab.errors import ConfigError

    with pytest.warns(UserWarning, match="guide_step=3.*unguided"):
        short = guided_pixelcnn(digits, 2, autoguidance=1.0)
    torch.testing.assert_close(
        short.sample(3, generator=torch.Generator().manual_seed(0)),
        short.sample(3, generator=torch.Generator().manual_seed(0), autoguidance=0.0),
    )
    with pytest.raises(
        ConfigError,
        match="autoregressive: autoguidance needs the copy.*selected at training step 2",
    ):
        short.sample(3, autoguidance=1.0)
    with pytest.raises(ConfigError, match="set guide_step"):
        AutoregressiveConfig(autoguidance=1.0)
    with pytest.raises(ConfigError, match="needs architecture=pixelcnn"):
        Autoregressive(AutoregressiveConfig(architecture="made", guide_step=3), tiny_info())
    real = DataInfo("line", (1, 2, 2), "image", value_range=(-1.0, 1.0))
    with pytest.raises(
        ConfigError, match="likelihood=gaussian_mixture is a density on continuous"
    ):
        Autoregressive(AutoregressiveConfig(guide_step=3), real)
