"""Normalizing flows: log-determinants against autograd Jacobians, inverses, normalisation,
and trained densities against a Gaussian mixture and the true density of the 2-D data."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import pytest
import torch
from sklearn.mixture import GaussianMixture
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

import genlab
from genlab.data import DataInfo, Dataset
from genlab.errors import ConfigError, SamplerWarning
from genlab.models.flow import Flow, FlowConfig
from genlab.nn import MLP, AffineNormalizer
from genlab.nn.denoisers import SelfAttention2d
from genlab.nn.flows import (
    ActNorm,
    AffineCoupling,
    Bijection,
    Chain,
    ConvConditioner,
    InvertibleLinear,
    Logit,
    MaskedAffineAutoregressive,
    SplineCoupling,
    Squeezed,
    Standardize,
    affine_transform,
    soft_clamp,
)
from genlab.nn.fused_couplings import narrow_matmul
from genlab.nn.made import MADE


def randomize(module: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Random non-zero weights everywhere (never the identity initialisation)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn_like(p))
    return module


def jacobian_log_det(f, x: torch.Tensor) -> torch.Tensor:
    """log|det dz/dx| of each example from the autograd Jacobian, ``x`` of shape (B, *event)."""
    out = []
    for row in x:

        def flat(v, row=row):
            return f(v.view(1, *row.shape))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(flat, row.reshape(-1))
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


def image_mask(shape, parity):
    h, w = shape[1:]
    return ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == parity).expand(shape)


def bijections() -> dict[str, tuple[Bijection, tuple[int, ...]]]:
    d = 5
    normalizer = AffineNormalizer((d,), per_feature=True)
    normalizer.fit(torch.randn(50, d, dtype=torch.float64) * 3 + 1)
    return {
        "actnorm": (ActNorm(d), (d,)),
        "actnorm_image": (ActNorm(2, spatial_dims=2), (2, 2, 3)),
        "linear": (InvertibleLinear(d), (d,)),
        "linear_1x1": (InvertibleLinear(2), (2, 1, 3)),
        "coupling_mlp": (AffineCoupling(torch.arange(d) % 2 == 0, MLP(d, 2 * d, (8, 8))), (d,)),
        "coupling_conv": (
            AffineCoupling(image_mask((1, 2, 3), 1), ConvConditioner(1, 4)),
            (1, 2, 3),
        ),
        "maf": (MaskedAffineAutoregressive(torch.randperm(d) + 1, (16, 16)), (d,)),
        "spline": (SplineCoupling(torch.arange(d) % 2 == 0, (16,), n_bins=5, bound=2.0), (d,)),
        "logit": (Logit(-0.5, 4.5, 0.05), (d,)),
        "squeezed": (  # (1, 2, 4) images as (4, 1, 2) inside: a channel coupling there
            Squeezed(
                Chain(
                    [
                        ActNorm(4, spatial_dims=2),
                        AffineCoupling(
                            (torch.arange(4) < 2)[:, None, None].expand(4, 1, 2),
                            ConvConditioner(4, 6),
                        ),
                        InvertibleLinear(4),
                    ]
                )
            ),
            (1, 2, 4),
        ),
        "standardize": (Standardize(normalizer), (d,)),
        "chain": (
            Chain(
                [
                    ActNorm(d),
                    AffineCoupling(torch.arange(d) % 2 == 1, MLP(d, 2 * d, (8,))),
                    InvertibleLinear(d),
                    MaskedAffineAutoregressive(torch.arange(d, 0, -1), (12,)),
                ]
            ),
            (d,),
        ),
    }


def _inputs(name: str, shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    if name == "logit":
        return torch.rand(n, *shape, dtype=torch.float64) * 4.8 - 0.4  # inside (-0.5, 4.5)
    if name == "spline":  # inside and outside the spline's interval [-2, 2]
        return 1.5 * torch.randn(n, *shape, dtype=torch.float64)
    return torch.randn(n, *shape, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(bijections()))
def test_log_det_equals_autograd_jacobian(name):
    layer, shape = bijections()[name]
    layer = randomize(layer).double()
    x = _inputs(name, shape)
    z, log_det = layer(x)
    assert z.shape == x.shape and log_det.shape == (len(x),)
    torch.testing.assert_close(log_det, jacobian_log_det(layer, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(bijections()))
def test_inverse_recovers_the_input(name):
    layer, shape = bijections()[name]
    layer = randomize(layer, 0.3).double()
    x = _inputs(name, shape)
    z, _ = layer(x)
    assert not torch.allclose(z, x), "randomised layer should not be the identity"
    torch.testing.assert_close(layer.inverse(z), x, rtol=1e-5, atol=1e-5)


def test_made_is_autoregressive_in_its_order():
    order = torch.tensor([3, 1, 4, 2])
    made = randomize(MADE(order, (16, 16), n_outputs=2)).double()
    jac = torch.autograd.functional.jacobian(made, torch.randn(1, 4, dtype=torch.float64))[0, :, 0]
    for block in range(2):
        for i in range(4):
            for j in range(4):
                depends = bool(jac[block * 4 + i, j].abs() > 0)
                assert depends == bool(order[j] < order[i]), (block, i, j)


CONTEXT = 3  # context features of the conditional layers below


def conditional_bijections() -> dict[str, tuple[Bijection, tuple[int, ...]]]:
    """Every conditioner, built to read a context of CONTEXT features."""
    d, c = 5, CONTEXT
    return {
        "coupling_mlp": (AffineCoupling(torch.arange(d) % 2 == 0, MLP(d + c, 2 * d, (8,))), (d,)),
        "coupling_conv": (
            AffineCoupling(image_mask((1, 2, 3), 1), ConvConditioner(1, 4, context_features=c)),
            (1, 2, 3),
        ),
        "maf": (
            MaskedAffineAutoregressive(torch.randperm(d) + 1, (16,), context_features=c),
            (d,),
        ),
        "spline": (
            SplineCoupling(torch.arange(d) % 2 == 1, (16,), 5, 2.0, context_features=c),
            (d,),
        ),
        "chain": (
            Chain(
                [
                    ActNorm(d),
                    AffineCoupling(torch.arange(d) % 2 == 1, MLP(d + c, 2 * d, (8,))),
                    InvertibleLinear(d),
                    MaskedAffineAutoregressive(torch.arange(d, 0, -1), (12,), context_features=c),
                ]
            ),
            (d,),
        ),
    }


@pytest.mark.parametrize("name", sorted(conditional_bijections()))
def test_conditional_layers_are_bijections_of_x_for_each_context(name):
    """log|det dz/dx| at fixed context = the autograd Jacobian's; the inverse given the same
    context recovers x; and the context changes the map."""
    layer, shape = conditional_bijections()[name]
    layer = randomize(layer, 0.3).double()
    x = _inputs("spline" if name == "spline" else name, shape)
    context = torch.randn(len(x), CONTEXT, dtype=torch.float64)
    z, log_det = layer(x, context)
    for i in range(len(x)):
        row = context[i : i + 1]
        expected = jacobian_log_det(lambda v, row=row: layer(v, row), x[i : i + 1])
        torch.testing.assert_close(log_det[i : i + 1], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.inverse(z, context), x, rtol=1e-5, atol=1e-5)
    other, other_log_det = layer(x, context.flip(0))
    assert not torch.allclose(other, z) and not torch.allclose(other_log_det, log_det)


def test_conditional_made_is_autoregressive_in_x_and_reads_all_of_the_context():
    order = torch.tensor([3, 1, 4, 2])
    for hidden in [(16, 16), ()]:  # context wired to every hidden unit, or straight to outputs
        # tanh: no unit is switched off at the one input, so every connection shows
        made = MADE(order, hidden, n_outputs=2, activation="tanh", context_features=2)
        made = randomize(made).double()
        inputs = torch.randn(1, 6, dtype=torch.float64)  # 4 data inputs, then 2 of context
        jac = torch.autograd.functional.jacobian(made, inputs)[0, :, 0]  # (8 outputs, 6 inputs)
        for block in range(2):
            for i in range(4):
                for j in range(4):
                    depends = bool(jac[block * 4 + i, j].abs() > 0)
                    assert depends == bool(order[j] < order[i]), (hidden, block, i, j)
        assert bool((jac[:, 4:].abs() > 0).all()), hidden


def _model_info(kind: str) -> DataInfo:
    if kind == "image":  # 6 pixels, 5 levels spaced 2 apart (support of the dequantised values)
        return DataInfo("t", (1, 2, 3), "image", levels=5, value_range=(0.0, 8.0))
    if kind == "square_image":  # 4x4: squeezed twice, to (16, 1, 1)
        return DataInfo("t", (1, 4, 4), "image", levels=5, value_range=(0.0, 8.0))
    return DataInfo("t", (5,), "vector")


@pytest.mark.parametrize(
    "kind,settings",
    [
        ("vector", {}),
        ("vector", {"transform": "maf", "linear": True}),
        ("vector", {"random_masks": True, "linear": True}),
        ("image", {}),
        ("image", {"transform": "maf"}),
        ("image", {"conditioner": "mlp", "logit": False}),
        ("vector", {"transform": "spline", "spline_bound": 1.5}),
        ("image", {"transform": "spline", "random_masks": True}),
        ("square_image", {"levels": 3, "linear": True}),
        ("square_image", {"levels": 3, "attention_side": 2}),
    ],
)
def test_model_log_prob_is_the_change_of_variables(kind, settings):
    """log p(x) = log N(f(x)) + log|det J_f(x)| with J from autograd, pre-transform included."""
    info = _model_info(kind)
    config = FlowConfig(n_layers=3, hidden=(8,), channels=4, **settings)
    model = randomize(Flow(config, info), 0.3).double()
    if kind != "vector":
        x = torch.rand(4, *info.event_shape, dtype=torch.float64) * 9.8 - 0.9
    else:
        x = torch.randn(4, *info.event_shape, dtype=torch.float64)
    if isinstance(model.pre, Standardize):
        model.pre.normalizer.fit(torch.randn(20, *info.event_shape, dtype=torch.float64) * 2)

    def encode(v):
        return (model.encode(v),)

    z = model.encode(x)
    expected = -0.5 * (z.square().sum(1) + z.shape[1] * math.log(2 * math.pi))
    expected = expected + jacobian_log_det(encode, x)
    torch.testing.assert_close(model.log_prob(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.decode(z), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kind,settings",
    [
        ("vector", {}),
        ("vector", {"transform": "maf", "linear": True}),
        ("vector", {"transform": "spline", "spline_bound": 1.5}),
        ("image", {}),
        ("image", {"transform": "maf"}),
        ("image", {"conditioner": "mlp", "logit": False}),
        ("square_image", {"levels": 2}),
    ],
)
def test_conditional_flow_log_prob_is_the_change_of_variables_given_each_label(kind, settings):
    """log p(x | y) = log N(f(x; y)) + log|det df(x; y)/dx| with J from autograd, per label."""
    info = dataclasses.replace(_model_info(kind), n_classes=3)
    config = FlowConfig(n_layers=3, hidden=(8,), channels=4, conditional=True, **settings)
    model = randomize(Flow(config, info), 0.3).double()
    if kind != "vector":
        x = torch.rand(4, *info.event_shape, dtype=torch.float64) * 9.8 - 0.9
    else:
        x = torch.randn(4, *info.event_shape, dtype=torch.float64)
    if isinstance(model.pre, Standardize):
        model.pre.normalizer.fit(torch.randn(20, *info.event_shape, dtype=torch.float64) * 2)
    labels = torch.tensor([0, 2, 1, 2])
    z = model.encode(x, context=labels)
    expected = -0.5 * (z.square().sum(1) + z.shape[1] * math.log(2 * math.pi))
    expected = expected + torch.cat(
        [
            jacobian_log_det(
                lambda v, y=labels[i : i + 1]: (model.encode(v, context=y),), x[i : i + 1]
            )
            for i in range(len(x))
        ]
    )
    torch.testing.assert_close(model.log_prob(x, context=labels), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.decode(z, context=labels), x, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model.log_prob(x, context=(labels + 1) % 3), expected)


def test_completion_chains_run_on_the_whole_line_with_the_exact_density():
    """The chains' coordinates v = atanh(f_0(x) / c) map the logit's range onto the whole line:
    every finite v is in the support (a finite log-density, even where h = f_0(x) would be far
    past the edge), transform and inverse round-trip, and log p(v) = log p(x) + log|det dx/dv|
    with the Jacobian from autograd."""
    info = _model_info("image")
    model = randomize(Flow(FlowConfig(n_layers=2, channels=4), info), 0.3).double()
    d = info.n_features
    density = model.explicit_density(torch.zeros(d, dtype=torch.float64), torch.eye(d))
    v = 3 * torch.randn(8, d, dtype=torch.float64)
    assert (model._from_chain(v).abs() > 0.99 * model._support_edge()).any()  # near the edge
    log_p = density.log_density(v)
    assert torch.isfinite(log_p).all() and density.in_support(v).all()
    x = density.inverse(v)
    torch.testing.assert_close(density.transform(x), v)
    expected = model.log_prob(x.view(-1, *info.event_shape)) + jacobian_log_det(
        lambda u: (density.inverse(u),), v
    )
    torch.testing.assert_close(log_p, expected)


def test_completion_chains_move_on_images_whose_pixels_sit_at_the_edge(tiny_28):
    """392 unobserved pixels, every one at 0 or 255 (the logit's edges), the 28x28 settings:
    every chain accepts moves (on chains in h = f_0(x) none did: each SIR candidate had some
    pixel past the edge, so each chain started at log-density -inf and returned its start)."""
    model = genlab.fit("flow", tiny_28, budget="smoke")
    mask = torch.zeros(1, 28, 28, dtype=torch.bool)
    mask[:, :14] = True
    x = tiny_28.x_test[:3]
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerWarning)
        completions = model.sample_conditional(x, mask, 2, steps=10, generator=g)
    assert completions.shape == (2, 3, 1, 28, 28)
    torch.testing.assert_close(completions[:, :, mask], x[:, mask].expand(2, -1, -1))


def test_a_run_records_what_auto_became_and_loads_with_it(tiny_28, tmp_path, monkeypatch):
    """``levels=auto`` on 28x28 images is 3 levels: the run's config.json keeps the setting and
    what it became (``decided``), and the run loads with 3 levels even where the rule would
    now pick another count (a later genlab), giving the trained model's log-likelihoods."""
    trained = genlab.fit("flow", tiny_28, budget="smoke", steps=3, out=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["levels"] == "auto"
    assert config["decided"] == {
        "levels": 3, "logit": True, "actnorm": True, "prior_covariance": "diag"
    }  # fmt: skip
    monkeypatch.setattr(genlab.models.flow, "AUTO_LEVELS", 1)
    assert Flow(trained.config, tiny_28.info).levels == 1  # the rule has changed
    loaded = genlab.load(tmp_path / "run")
    assert loaded.levels == 3 and loaded.decisions == config["decided"]
    x = tiny_28.x_test[:4]
    torch.testing.assert_close(loaded.log_prob(x), trained.log_prob(x))


def test_squeezed_layers_see_each_2x2_patch_as_four_channels():
    """Inside ``Squeezed`` channel k of position (i, j) is pixel (2i + k // 2, 2j + k % 2): an
    ActNorm scaling channel k by 10^k multiplies exactly those pixels, and nothing else moves."""
    actnorm = ActNorm(4, spatial_dims=2)
    with torch.no_grad():
        actnorm.log_scale.copy_(torch.arange(4.0).mul(math.log(10)).view(1, 4, 1, 1))
    x = torch.ones(1, 1, 4, 6)
    z, log_det = Squeezed(actnorm)(x)
    patch = torch.tensor([[1.0, 10.0], [100.0, 1000.0]])
    torch.testing.assert_close(z[0, 0], patch.repeat(2, 3))
    torch.testing.assert_close(log_det, torch.tensor([6 * math.log(10**6)]))


def test_levels_nest_squeezed_scales_with_channel_masks():
    """levels=3 on 8x8 images: couplings at 1x8x8, then 4x4x4, then 16x2x2, channel halves
    alternating on the squeezed levels; sides that cannot be halved twice are refused."""
    info = DataInfo("t", (1, 8, 8), "image", levels=5, value_range=(0.0, 8.0))
    model = Flow(FlowConfig(n_layers=2, channels=4, levels=3), info)
    shapes, level = [], model.layers
    while True:
        couplings = [layer for layer in level.layers if isinstance(layer, AffineCoupling)]
        shapes.append(tuple(couplings[0].mask.shape[1:]))
        inner = [layer for layer in level.layers if isinstance(layer, Squeezed)]
        if not inner:
            break
        level = inner[0].inner
    assert shapes == [(1, 8, 8), (4, 4, 4), (16, 2, 2)]
    first, second = [c.mask[0, :, 0, 0].tolist() for c in couplings]
    assert first == [True] * 8 + [False] * 8 and second == [not m for m in first]
    with pytest.raises(ConfigError, match="sides divisible by 4"):
        Flow(FlowConfig(levels=3), DataInfo("t", (1, 6, 6), "image", levels=5))
    with pytest.raises(ConfigError, match="needs conditioner=conv"):
        Flow(FlowConfig(levels=2, conditioner="mlp"), info)


def test_attention_side_puts_self_attention_in_the_conditioners_of_small_grids_only():
    """attention_side=4 on 8x8 images with levels=3: the 4x4 and 2x2 levels' conditioners
    attend, the 8x8 level's do not; a conditioner that attends mixes every position of its
    grid (the gradient of one output position reaches every input position, which 3x3, 1x1,
    3x3 convolutions on a 4x4 grid alone would not: they see 5x5); MLP conditioners refuse it."""
    info = DataInfo("t", (1, 8, 8), "image", levels=5, value_range=(0.0, 8.0))
    model = randomize(
        Flow(FlowConfig(n_layers=2, channels=4, levels=3, attention_side=4), info), 0.3
    )
    attends = {
        tuple(layer.mask.shape[-2:]): any(
            isinstance(m, SelfAttention2d) for m in layer.conditioner.modules()
        )
        for layer in model.layers.modules()
        if isinstance(layer, AffineCoupling)
    }
    assert attends == {(8, 8): False, (4, 4): True, (2, 2): True}
    coupling = next(
        layer for layer in model.layers.modules()
        if isinstance(layer, AffineCoupling) and layer.mask.shape[-1] == 4
    )  # fmt: skip
    u = torch.randn(1, 4, 4, 4, requires_grad=True)
    coupling.conditioner(u)[0, :, 0, 0].sum().backward()
    assert bool((u.grad[0].abs().sum(0) > 0).all())
    with pytest.raises(ConfigError, match="attention_side=2 attends in conv conditioners"):
        Flow(FlowConfig(conditioner="mlp", attention_side=2), info)


@pytest.mark.parametrize(
    "shape,conditioner,levels",
    [((1, 28, 28), "conv", 3), ((1, 18, 18), "conv", 2), ((1, 17, 17), "conv", 1),
     ((1, 8, 8), "conv", 1), ((1, 28, 28), "mlp", 1)],
)  # fmt: skip
def test_auto_levels_squeeze_large_images_as_far_as_their_sides_halve(shape, conditioner, levels):
    info = DataInfo("t", shape, "image", levels=5, value_range=(0.0, 8.0))
    model = Flow(FlowConfig(n_layers=1, channels=2, levels="auto", conditioner=conditioner), info)
    assert model.levels == levels


def test_a_sample_at_temperature_t_is_the_inverse_of_t_times_the_standard_draw():
    """sample(temperature=T) = f^{-1}(T z) for the z that sample() draws from the same seed."""
    model = randomize(Flow(FlowConfig(n_layers=3, hidden=(8,)), _model_info("vector")), 0.3)
    model.pre.normalizer.fit(torch.randn(20, 5) * 2)
    with torch.no_grad():
        cold = model.sample(6, generator=torch.Generator().manual_seed(3), temperature=0.5)
        z = model.encode(model.sample(6, generator=torch.Generator().manual_seed(3)))
        torch.testing.assert_close(model.encode(cold), 0.5 * z, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="temperature must be positive"):
        model.sample(2, temperature=0.0)


def _log_prob_with(model: Flow, x: torch.Tensor, layers: Chain) -> torch.Tensor:
    """``model``'s log-density of ``x`` with these layers instead of its own."""
    z, log_det = model.transform(x, None, layers)
    return model.log_prior(z) + log_det


def test_the_model_is_the_average_of_the_trained_layers():
    """A training step moves the layers by Adam and their average by the EMA rule
    avg <- b avg + (1 - b) layers, b = min(decay, (1 + t) / (10 + t)); log_prob, encode and
    decode are the average's (the step's loss is the trained layers')."""
    from genlab.train import Optimizers, TrainConfig

    model = Flow(FlowConfig(n_layers=2, hidden=(8,), ema_decay=0.1), _model_info("vector"))
    x = torch.randn(64, 5)
    model.prepare(x)
    optimizers = Optimizers(model.configure_optimizers(TrainConfig(steps=1, lr=0.05)))
    before = [p.detach().clone() for p in model.averaged["layers"].parameters()]
    model.training_step(x, optimizers, torch.Generator())
    beta = min(0.1, 2 / 11)
    trained = list(model.layers.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(trained, before, strict=True))
    for avg, b, p in zip(model.averaged["layers"].parameters(), before, trained, strict=True):
        torch.testing.assert_close(avg, beta * b + (1 - beta) * p)
    with torch.no_grad():
        torch.testing.assert_close(
            model.log_prob(x), _log_prob_with(model, x, model.averaged["layers"])
        )
        assert not torch.allclose(model.log_prob(x), _log_prob_with(model, x, model.layers))


def test_a_run_saved_before_averaging_loads_with_its_layers_as_the_average(tmp_path):
    """A flow run written before ``ema_decay`` existed (no ``averaged.*``/``steps`` tensors, no
    field in its config) loads, and its model is its trained layers."""
    import json

    from safetensors.torch import save_file

    from genlab.io import read_safetensors

    run = tmp_path / "run"
    trained = genlab.fit("flow", "digits", out=run, budget="smoke", steps=3, progress=False)
    config = json.loads((run / "config.json").read_text())
    del config["model"]["ema_decay"]
    (run / "config.json").write_text(json.dumps(config))
    tensors, metadata = read_safetensors(run / "model.safetensors")
    old = {
        k: v for k, v in tensors.items() if not k.startswith(("model.averaged.", "model.steps"))
    }
    assert len(old) < len(tensors)
    save_file(old, run / "model.safetensors", metadata=metadata)
    loaded = genlab.load(run)
    x = genlab.data.load("digits").x_test[:4]
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), _log_prob_with(trained, x, trained.layers))


def test_log_prob_is_minus_infinity_outside_the_logit_support():
    model = Flow(FlowConfig(n_layers=2, hidden=(8,)), _model_info("image"))
    x = torch.full((2, 1, 2, 3), 4.0)
    x[1, 0, 0, 0] = 9.5  # beyond high + step / 2 = 9
    log_p = model.log_prob(x)
    assert torch.isfinite(log_p[0]) and log_p[1] == -math.inf


def _mixture_data(seed: int = 0) -> Dataset:
    """Three isotropic Gaussians (std 0.3); true density known."""
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.2]])
    g = torch.Generator().manual_seed(seed)

    def draw(n):
        k = torch.randint(3, (n,), generator=g)
        return centres[k] + 0.3 * torch.randn(n, 2, generator=g)

    info = DataInfo("mixture", (2,), "vector", value_range=(-3.0, 3.0))
    return Dataset(draw(4000), draw(1000), info)


def test_trained_flow_density_integrates_to_one_on_a_fine_grid():
    data = _mixture_data()
    model = genlab.fit(
        "flow", data, steps=200, batch_size=256, lr=3e-3, val_fraction=0.0, n_layers=4, seed=0
    )
    step = 0.02  # midpoint rule: relative error ~ (step / std)^2 / 24 < 1e-3
    grid = torch.arange(-4.5, 4.5, step) + step / 2  # the box reaches 10 std past every centre
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        density = torch.cat([model.log_prob(c).double().exp() for c in points.split(65536)])
    mass = float(density.sum() * step**2)
    assert abs(mass - 1.0) < 0.01, mass
    # and it learned something: the three modes are much denser than the space between them
    with torch.no_grad():
        at = model.log_prob(torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.2], [3.0, 3.0]]))
    assert (at[:3] > at[3] + 5).all()


def _mixture_base_flow(prior: str = "mixture") -> Flow:
    return genlab.fit(
        "flow", _mixture_data(), steps=200, batch_size=256, lr=3e-3, val_fraction=0.0,
        n_layers=4, seed=0, prior=prior, prior_components=3,
    )  # fmt: skip


def test_a_mixture_base_is_fitted_after_training_and_its_density_integrates_to_one():
    """log p(x) = log pi(f(x)) + log|det J_f(x)| with pi the fitted diagonal mixture, a density
    that still integrates to 1; the layers are those of the flow trained under N(0, I), which
    the unfitted mixture is."""
    info = _model_info("vector")
    torch.manual_seed(0)
    unfitted = Flow(FlowConfig(n_layers=2, hidden=(8,), prior="mixture"), info)
    torch.manual_seed(0)
    normal = Flow(FlowConfig(n_layers=2, hidden=(8,)), info)
    x = torch.randn(6, 5)
    torch.testing.assert_close(unfitted.log_prob(x), normal.log_prob(x))
    model = _mixture_base_flow()
    plain = _mixture_base_flow(prior="normal")
    for name, value in plain.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    prior = model.prior
    assert prior is not None and prior.covariance == "full"  # 2 codes: full covariances
    assert prior.means.abs().max() > 0.1  # fitted, no longer N(0, I)
    x = _mixture_data().x_test[:50]
    with torch.no_grad():
        z, log_det = model.transform(x)
        mixture = MixtureSameFamily(
            Categorical(prior.weights),
            MultivariateNormal(prior.means, scale_tril=prior.scale_tril),
        )
        log_p = model.log_prob(x)
        torch.testing.assert_close(log_p, mixture.log_prob(z) + log_det)
        # the base fits the codes better than N(0, I): higher likelihood on held-out points
        log_normal = -0.5 * (z.square().sum(1) + 2 * math.log(2 * math.pi))
        assert log_p.mean() > (log_normal + log_det).mean()
    step = 0.02
    grid = torch.arange(-4.5, 4.5, step) + step / 2
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        density = torch.cat([model.log_prob(c).double().exp() for c in points.split(65536)])
    assert abs(float(density.sum() * step**2) - 1.0) < 0.01


def test_a_mixture_base_flow_samples_its_mixture_codes_at_any_temperature(tmp_path, monkeypatch):
    """sample(temperature=T) = f^{-1}(z) for the codes the mixture draws from the same seed
    (each component's deviation scaled by T), and the fitted base survives save and load, with
    the covariance that "auto" became recorded (a later rule loads it as it was)."""
    data = _mixture_data()
    model = genlab.fit(
        "flow", data, steps=30, val_fraction=0.0, n_layers=2, seed=0, prior="mixture",
        prior_components=3, out=tmp_path / "run",
    )  # fmt: skip
    for temperature in (1.0, 0.6):
        with torch.no_grad():
            drawn = model.sample(
                5, generator=torch.Generator().manual_seed(1), temperature=temperature
            )
            codes = model.prior.sample(5, torch.Generator().manual_seed(1), temperature)
            torch.testing.assert_close(model.encode(drawn), codes, atol=1e-4, rtol=1e-4)
    decided = json.loads((tmp_path / "run" / "config.json").read_text())["decided"]
    assert decided["prior_covariance"] == "full"
    monkeypatch.setattr("genlab.models.flow.FULL_COVARIANCE_DIMS", 1)  # a later rule: diagonal
    reloaded = genlab.load(tmp_path / "run")
    assert reloaded.prior.covariance == "full"
    torch.testing.assert_close(reloaded.prior.means, model.prior.means)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.log_prob(data.x_test), model.log_prob(data.x_test))


def test_an_unknown_base_covariance_is_refused():
    with pytest.raises(ConfigError, match="prior_covariance must be auto, full or diag"):
        FlowConfig(prior_covariance="spherical")


def test_large_images_get_the_mixture_base_and_small_data_the_normal_one(tiny_28, digits):
    from genlab.settings import resolve_settings

    for budget in ("smoke", "fast", "full", None):
        assert resolve_settings("flow", {}, budget, tiny_28.info).model.prior == "mixture"
        assert resolve_settings("flow", {}, budget, digits.info).model.prior == "normal"
    # 784 codes: diagonal covariances; 64 (8x8 digits): full ones
    config = resolve_settings("flow", {}, "smoke", tiny_28.info).model
    assert Flow(config, tiny_28.info).prior.covariance == "diag"
    config = resolve_settings("flow", {"prior": "mixture"}, "smoke", digits.info).model
    assert Flow(config, digits.info).prior.covariance == "full"


def test_a_conditional_flow_fits_its_mixture_base_to_the_codes_given_each_label(monkeypatch):
    """The base is fitted to z_i = f(x_i; y_i), each training point's code given its own label
    (continuous data: no dequantisation noise, so the codes are exact), and the model's
    log-density is then log pi(f(x; y)) + log|det| given the label."""
    data = _mixture_data()
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.2]])
    labels = [(torch.cdist(x, centres).argmin(1)) for x in (data.x_train, data.x_test)]
    info = dataclasses.replace(data.info, n_classes=3)
    labelled = Dataset(data.x_train, data.x_test, info, y_train=labels[0], y_test=labels[1])
    fitted: dict[str, torch.Tensor] = {}
    fit_code_prior = Flow.fit_code_prior

    def recording(self, codes, generator):
        fitted["codes"] = codes.clone()
        fit_code_prior(self, codes, generator)

    monkeypatch.setattr(Flow, "fit_code_prior", recording)
    model = genlab.fit(
        "flow", labelled, steps=100, conditional=True, prior="mixture", prior_components=2,
        n_layers=2, hidden=(16,), lr=1e-2, val_fraction=0.0, seed=0,
    )  # fmt: skip
    x, y = labelled.x_train, labelled.y_train
    with torch.no_grad():
        torch.testing.assert_close(fitted["codes"], model.encode(x, context=y))
        assert not torch.allclose(fitted["codes"], model.encode(x, context=(y + 1) % 3), atol=0.1)
        z, log_det = model.transform(x[:5], model.one_hot_labels(y[:5]))
        torch.testing.assert_close(
            model.log_prob(x[:5], context=y[:5]), model.prior.log_prob(z) + log_det
        )
        drawn = model.sample(4, generator=torch.Generator().manual_seed(0), context=y[:4])
    assert drawn.shape == (4, 2)


@pytest.mark.parametrize("masked", [False, True])
def test_affine_transform_passes_gradcheck(masked):
    x, raw, shift = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    free = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64) if masked else None
    bound = 2.0

    def f(a, b, c):
        return affine_transform(a, b, c, bound, free)

    assert torch.autograd.gradcheck(f, (x, raw, shift))
    z, log_det = f(x, raw, shift)
    mask = free if masked else torch.ones(())
    scale = mask * bound * torch.tanh(raw / bound)
    torch.testing.assert_close(z, x * scale.exp() + shift * mask)
    torch.testing.assert_close(log_det, scale.sum(1))


def coupling_chain(d: int, hidden: tuple[int, ...], **mlp) -> Chain:
    """Four affine couplings on ``(B, d)`` vectors, alternating parity masks, random weights."""
    layers = [
        AffineCoupling(torch.arange(d) % 2 == i % 2, MLP(d, 2 * d, hidden, **mlp), 2.5)
        for i in range(4)
    ]
    return randomize(Chain(layers).double())


# (2, (64, 64)): the plane, whose first and last products are narrow (computed transposed)
@pytest.mark.parametrize(("d", "hidden"), [(2, (64, 64)), (5, (16,)), (3, ())])
def test_fused_couplings_equal_the_layers_and_pass_gradcheck(d, hidden):
    """The fused pass (one autograd node, backward by hand) gives the layers' own values and
    gradients; gradcheck checks its backward against finite differences in float64 (in random
    directions: ``fast_mode``)."""
    chain = coupling_chain(d, hidden)
    assert chain.fused
    x = torch.randn(20, d, dtype=torch.float64, requires_grad=True)
    params = list(chain.parameters())
    assert torch.autograd.gradcheck(lambda v, *_: chain(v), (x[:6], *params), fast_mode=True)

    def values_and_gradients(fused: bool) -> list[torch.Tensor]:
        chain.fused = fused
        z, log_det = chain(x)
        assert (z.grad_fn.name() == "_AffineCouplingsBackward") == fused
        loss = (z.sin() * torch.arange(d)).sum() + (log_det * torch.linspace(0, 1, 20)).sum()
        return [z, log_det, *torch.autograd.grad(loss, [x, *params])]

    for ours, theirs in zip(values_and_gradients(True), values_and_gradients(False), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_the_fused_couplings_follow_the_chain_to_a_new_dtype():
    """The fused pass keeps its view of the couplings between steps; a move (``to``, ``double``)
    replaces the masks, and the view is rebuilt from the new ones."""
    chain = coupling_chain(3, (8,)).float()
    chain(torch.randn(5, 3, requires_grad=True))  # builds the view
    chain.double()
    z, log_det = chain(torch.randn(5, 3, dtype=torch.float64, requires_grad=True))
    assert z.grad_fn.name() == "_AffineCouplingsBackward" and log_det.dtype == torch.float64
    for coupling, layer in zip(chain._fused_couplings(), chain.layers, strict=True):
        assert coupling.mask is layer.mask and coupling.free is layer.free
        assert coupling.mask.dtype == torch.float64


@pytest.mark.parametrize(("rows", "inner", "columns"), [(512, 64, 2), (512, 2, 64), (3, 5, 4)])
def test_narrow_matmul_is_the_product(rows, inner, columns):
    a, b, bias = torch.randn(rows, inner), torch.randn(inner, columns), torch.randn(columns)
    torch.testing.assert_close(narrow_matmul(a, b), a @ b)
    torch.testing.assert_close(narrow_matmul(a, b, bias), a @ b + bias)


def test_only_relu_mlp_couplings_without_context_are_fused():
    assert not coupling_chain(4, (8,), activation="silu").fused
    assert not coupling_chain(4, (8,), dropout=0.1).fused
    assert not Chain([ActNorm(4), *coupling_chain(4, (8,)).layers]).fused
    assert not Chain([]).fused
    conditional = Chain(
        [AffineCoupling(torch.arange(4) % 2 == 0, MLP(4 + 3, 8, (8,)), 2.5)]  # 3 context features
    )
    assert not conditional.fused
    chain = coupling_chain(4, (8,))
    x = torch.randn(5, 4, dtype=torch.float64)
    assert chain(x)[0].grad_fn.name() == "_AffineCouplingsBackward"  # a training pass
    assert chain(x, torch.zeros(5, 0, dtype=torch.float64))[0].grad_fn.name() != (
        "_AffineCouplingsBackward"  # given a context, the layers themselves
    )


def test_a_flow_trains_to_the_same_weights_fused_or_not(monkeypatch):
    """The default flow on the plane runs fused: 30 training steps, fused and with every chain
    unfused, end at the same averaged weights (float rounding apart)."""
    moons = genlab.data.load("moons")
    settings = {"steps": 30, "hidden": (32, 32), "n_layers": 4, "seed": 0, "val_fraction": 0.0}
    fused = genlab.fit("flow", moons, **settings)
    assert fused.layers.fused
    monkeypatch.setattr("genlab.nn.flows.fusable_conditioner", lambda layer: None)
    unfused = genlab.fit("flow", moons, **settings)
    assert not unfused.layers.fused
    theirs = unfused.state_dict()
    for key, value in fused.state_dict().items():
        torch.testing.assert_close(value, theirs[key], rtol=1e-4, atol=1e-5, msg=key)


def test_soft_clamp_has_slope_one_at_zero_and_stays_inside_its_bound():
    raw = torch.tensor([0.0, 1e-3, -1e-3, 50.0, -50.0], dtype=torch.float64, requires_grad=True)
    clamped = soft_clamp(raw, 3.0)
    (slope,) = torch.autograd.grad(clamped.sum(), raw)
    torch.testing.assert_close(slope[:3], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(clamped[1:3], raw[1:3], rtol=1e-6, atol=0)  # s ~ raw near 0
    assert (clamped.abs() < 3.0).all() and clamped[3] > 2.999


def test_cli_trains_and_evaluates_an_exact_flow(tmp_path, capsys):
    import json

    from genlab.cli import main

    run = str(tmp_path / "flow")
    args = ["train", "flow", "--out", run, "--budget", "smoke", "--set", "transform=maf"]
    assert main([*args, "--no-progress"]) == 0
    assert main(["evaluate", run, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["log_prob_kind"] == "exact" and result["importance_samples"] is None
    assert result["levels"] == 17 and math.isfinite(result["bits_per_dim"])
    samples = tmp_path / "s.npy"
    assert main(["sample", run, "-n", "7", "--out", str(samples)]) == 0


@pytest.mark.parametrize("transform", ["maf", "spline"])
@pytest.mark.parametrize("dataset", ["digits", "ring"])
def test_other_layer_stacks_pass_the_conformance_suite(transform, dataset, request, tmp_path):
    from tests.conformance import check_generative_model, check_gradients

    data = request.getfixturevalue(dataset)
    model = genlab.fit("flow", data, budget="smoke", transform=transform, seed=0)
    check_generative_model(model, data, tmp_path)
    fresh = genlab.api.build_model("flow", model.config, data.info)
    fresh.prepare(data.x_train)
    check_gradients(fresh, data)


# Test-sized versions of the 2-D acceptance numbers; the full ones (spline flow within 0.05 nats
# of ring's true density, above a 20-component mixture on moons) come from
# scripts/quality_flow_2d.py and are in README.
SPLINE_SMOKE = {
    "transform": "spline",
    "n_layers": 8,
    "hidden": (64, 64),
    "steps": 400,
    "batch_size": 512,
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "val_fraction": 0.0,
    "seed": 0,
}


def test_spline_flow_fits_the_narrow_modes_of_ring(ring):
    from genlab.stats.modes import mode_coverage_for

    model = genlab.fit("flow", ring, **SPLINE_SMOKE)
    with torch.no_grad():
        test_ll = float(model.log_prob(ring.x_test).double().mean())
        samples = model.sample(2500, generator=torch.Generator().manual_seed(0))
    true_ll = float(ring.true_log_prob(ring.x_test).double().mean())  # 4.30: modes of std 0.01
    assert test_ll > true_ll - 0.5, (test_ll, true_ll)
    coverage = mode_coverage_for(samples, ring.info)
    assert coverage.modes_captured == 8 and coverage.hq_fraction > 0.6, coverage


def test_spline_flow_beats_a_gaussian_mixture_on_moons():
    moons = genlab.data.load("moons")
    model = genlab.fit("flow", moons, **SPLINE_SMOKE)
    with torch.no_grad():
        test_ll = float(model.log_prob(moons.x_test).double().mean())
    gmm = GaussianMixture(10, random_state=0).fit(moons.x_train.numpy())
    assert test_ll > gmm.score(moons.x_test.numpy()) + 0.02, test_ll


def test_cosine_schedule_sets_the_learning_rate_of_each_step(tmp_path, ring):
    """lr_schedule=cosine: step t of T runs at lr (1 + cos(pi t / T)) / 2 (t counted from 0)."""
    import json

    from genlab.io import read_safetensors

    genlab.fit(
        "flow", ring, out=tmp_path / "run", budget="smoke", steps=4, lr=0.01,
        lr_schedule="cosine", val_fraction=0.0,
    )  # fmt: skip
    _, metadata = read_safetensors(tmp_path / "run" / "checkpoints" / "last.safetensors")
    group = json.loads(metadata["optim"])["main"]["param_groups"][0]
    assert group["initial_lr"] == 0.01
    assert group["lr"] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))
