"""The level likelihoods against their definitions: the discretised distributions' means and
the categorical's fused log-softmax."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical

from genlab.data.dataset import DataInfo
from genlab.nn.likelihoods import CategoricalLikelihood, DiscretizedGaussian, DiscretizedLogistic

F64 = torch.float64


@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("kind", [DiscretizedGaussian, DiscretizedLogistic])
def test_the_mean_of_a_discretised_distribution_is_its_probability_weighted_level(kind, levels):
    """The tail-sum mean (L - 1 CDF values) equals sum_j j P(j) from the level probabilities."""
    g = torch.Generator().manual_seed(levels)
    loc = torch.randn(300, generator=g, dtype=F64) * 1.2
    log_scale = torch.rand(300, generator=g, dtype=F64) * 8 - 7
    d = kind(loc, log_scale, levels)
    weighted = d.probs() @ torch.arange(levels, dtype=F64)
    torch.testing.assert_close(d.mean, weighted, rtol=1e-9, atol=1e-9 * levels)


def test_the_categorical_likelihood_is_torchs_categorical():
    """The fused log-softmax (cross_entropy) gives torch.distributions.Categorical's numbers,
    per coordinate and summed, with gradients."""
    info = DataInfo("levels", (2, 3), "image", levels=5, value_range=(0.0, 4.0))
    likelihood = CategoricalLikelihood(info)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(4, 3, 5, 6, generator=g, dtype=F64, requires_grad=True)  # (*batch, L, D)
    target = torch.randint(5, (4, 3, 6), generator=g).to(F64)
    reference = Categorical(logits=params.transpose(-1, -2)).log_prob(target)
    torch.testing.assert_close(likelihood.coordinate_log_prob(params, target), reference)
    torch.testing.assert_close(likelihood.log_prob(params, target), reference.sum(-1))
    (grad,) = torch.autograd.grad(likelihood.log_prob(params, target).sum(), params)
    (expected,) = torch.autograd.grad(reference.sum(), params)
    torch.testing.assert_close(grad, expected)
    # batch shapes broadcast as the distribution's do: one target against many parameters
    one = target[:1, :1]  # (1, 1, D)
    broadcast = Categorical(logits=params.transpose(-1, -2)).log_prob(one)
    torch.testing.assert_close(likelihood.coordinate_log_prob(params, one), broadcast)
    torch.testing.assert_close(
        likelihood.coordinate_log_prob(params[:1, :1], target),
        (Categorical(logits=params[:1, :1].transpose(-1, -2)).log_prob(target)),
    )


@pytest.mark.parametrize("levels", [2, 3, 256])
def test_is_binary_is_a_target_of_the_first_or_last_level_only(levels):
    """The set-up check on raw values agrees with its definition on the target, rounding
    included (values within half a step of a level are that level)."""
    from genlab.nn.likelihoods import BernoulliLikelihood

    info = DataInfo("t", (6,), "image", levels=levels, value_range=(-1.0, 2.0))
    likelihood = BernoulliLikelihood(info)
    step = 3.0 / (levels - 1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        level = torch.randint(levels, (6,), generator=generator).double()
        if bool(torch.rand((), generator=generator) < 0.5):  # mostly binary rows
            level = (level > levels / 2).double() * (levels - 1)
        jitter = (torch.rand(6, generator=generator, dtype=torch.float64) - 0.5) * 0.98 * step
        x = (-1.0 + step * level + jitter).unsqueeze(0)
        target = likelihood.target(x.clone())
        expected = bool(((target == 0) | (target == 1)).all())
        assert likelihood.is_binary(x) == expected


@pytest.mark.parametrize("temperature", [0.5, 2.0])
@pytest.mark.parametrize("name", ["categorical", "discretized_logistic_mixture", "bernoulli"])
def test_tempered_draws_follow_the_renormalised_power_of_the_conditional(name, temperature):
    """sample_coordinate(temperature=T) draws level j with P(j)^(1/T) / sum_i P(i)^(1/T), P
    from its definition (softmax of the logits; the mixture of discretised logistics; the
    sigmoid), at 4 standard errors, on a conditional far enough from its tempered self that
    the untempered draw fails the same check."""
    from genlab.nn.likelihoods import make_likelihood

    levels = 2 if name == "bernoulli" else 6
    info = DataInfo("levels", (1, 3), "image", levels=levels, value_range=(0.0, levels - 1.0))
    likelihood = make_likelihood(name, info, components=2)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(1, likelihood.n_params, 3, generator=g, dtype=F64)  # (1, n_params, D)
    d = 1
    if name == "categorical":
        probs = params[0, :, d].softmax(0)
    elif name == "bernoulli":
        p1 = torch.sigmoid(params[0, 0, d])
        probs = torch.stack([1 - p1, p1])
    else:  # pi_k = softmax(a)_k, P(j) = sum_k pi_k P_DL(j; mu_k, s_k)
        a, loc, log_scale = params[0, :, d].view(3, 2)
        probs = a.softmax(0) @ DiscretizedLogistic(loc, log_scale, levels).probs()
    tempered = probs ** (1 / temperature) / (probs ** (1 / temperature)).sum()
    n = 40_000
    draws = likelihood.sample_coordinate(params.expand(n, -1, -1), d, g, temperature)
    frequency = torch.bincount(draws.long(), minlength=levels).double() / n
    tolerance = 4 * (tempered * (1 - tempered) / n).sqrt()
    assert bool(((frequency - tempered).abs() < tolerance).all()), (frequency, tempered)
    assert bool(((probs - tempered).abs() > 3 * tolerance).any())  # T matters at this tolerance
    own = likelihood.sample_coordinate(params.expand(n, -1, -1), d, g)  # T = 1: untempered
    own_frequency = torch.bincount(own.long(), minlength=levels).double() / n
    assert not bool(((own_frequency - tempered).abs() < tolerance).all())


def test_a_temperature_is_refused_where_it_cannot_be_drawn_exactly():
    """T <= 0 always; T != 1 for a continuous likelihood (the way out named); T = 1 always."""
    from genlab.errors import ConfigError
    from genlab.nn.likelihoods import make_likelihood

    levels = DataInfo("levels", (3,), "vector", levels=4, value_range=(0.0, 3.0))
    real = DataInfo("real", (3,), "vector", value_range=(-1.0, 1.0))
    categorical = make_likelihood("categorical", levels)
    mixture = make_likelihood("gaussian_mixture", real, components=2)
    for temperature in (0.0, -0.5):
        with pytest.raises(ConfigError, match="temperature must be positive"):
            categorical.check_temperature(temperature)
    with pytest.raises(ConfigError, match="likelihood=categorical"):
        mixture.sample_coordinate(torch.zeros(2, 6, 3, dtype=F64), 0, None, 0.8)
    mixture.check_temperature(1.0)
    many = DataInfo("16-bit", (3,), "vector", levels=65_536, value_range=(0.0, 65_535.0))
    with pytest.raises(ConfigError, match="enumerates every level"):
        make_likelihood("discretized_logistic_mixture", many).check_temperature(0.8)
