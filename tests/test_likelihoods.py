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
