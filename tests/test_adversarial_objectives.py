"""The adversarial losses, penalties, weight clipping and parameter averaging against their formulas."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from genlab.nn.averaging import AveragedCopies, ema_decay, ema_update_
from genlab.objectives import (
    ADVERSARIAL_LOSSES,
    GAN_LOSSES,
    clip_weights_,
    gradient_penalty,
    hinge_discriminator_loss,
    input_gradient_norm,
    interpolate,
    minimax_discriminator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    r1_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from genlab.train.optim import lr_factor

LN3 = math.log(3.0)
# logits whose probabilities are sigma(0) = 1/2, sigma(ln 3) = 3/4, sigma(-ln 3) = 1/4
REAL = torch.tensor([0.0, LN3], dtype=torch.float64)
FAKE = torch.tensor([LN3, -LN3], dtype=torch.float64)


def test_probability_losses_match_hand_computed_values():
    # -E log D(x) - E log(1 - D(G(z))) with D(x) in {1/2, 3/4} and D(G(z)) in {3/4, 1/4}
    expected_d = -(math.log(0.5) + math.log(0.75)) / 2 - (math.log(0.25) + math.log(0.75)) / 2
    assert float(minimax_discriminator_loss(REAL, FAKE)) == pytest.approx(expected_d, rel=1e-12)
    # minimax generator: E log(1 - D(G(z))); non-saturating: -E log D(G(z))
    expected_mm = (math.log(0.25) + math.log(0.75)) / 2
    expected_ns = -(math.log(0.75) + math.log(0.25)) / 2
    assert float(minimax_generator_loss(FAKE)) == pytest.approx(expected_mm, rel=1e-12)
    assert float(nonsaturating_generator_loss(FAKE)) == pytest.approx(expected_ns, rel=1e-12)


def test_critic_losses_match_hand_computed_values():
    real = torch.tensor([2.0, -0.5, 0.25], dtype=torch.float64)
    fake = torch.tensor([-3.0, 0.5, -0.5], dtype=torch.float64)
    # E f(G(z)) - E f(x) = (-3 + 0.5 - 0.5)/3 - (2 - 0.5 + 0.25)/3
    assert float(wasserstein_critic_loss(real, fake)) == pytest.approx(-3.0 / 3 - 1.75 / 3)
    assert float(wasserstein_generator_loss(fake)) == pytest.approx(3.0 / 3)
    # E[1 - f(x)]_+ = (0 + 1.5 + 0.75)/3 and E[1 + f(G(z))]_+ = (0 + 1.5 + 0.5)/3
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(2.25 / 3 + 2.0 / 3)


def test_losses_are_stable_for_extreme_logits():
    big = torch.tensor([80.0, -80.0], dtype=torch.float32)
    for game in ADVERSARIAL_LOSSES.values():
        assert torch.isfinite(game.discriminator(big, -big))
        assert torch.isfinite(game.generator(big))
    # -log sigma(-80) = 80 to float precision, where a naive log(sigmoid) gives inf
    assert float(nonsaturating_generator_loss(torch.tensor([-80.0]))) == pytest.approx(80.0)


def test_every_loss_option_is_registered_and_role_swap_symmetric():
    """D losses are invariant under (real, fake) -> (-fake, -real), which BiGAN's encoder uses."""
    assert set(ADVERSARIAL_LOSSES) == set(GAN_LOSSES)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, generator=g) * 3, torch.randn(7, generator=g) * 3
    for game in ADVERSARIAL_LOSSES.values():
        torch.testing.assert_close(
            game.discriminator(real, fake), game.discriminator(-fake, -real)
        )


def _critic() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def _finite_difference_gradient(f, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences of the scalar function ``f`` applied to each row of ``x``."""
    grads = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            step = torch.zeros_like(x[i : i + 1])
            step[0, j] = h
            grads[i, j] = (f(x[i : i + 1] + step) - f(x[i : i + 1] - step)).squeeze() / (2 * h)
    return grads


def test_gradient_penalty_matches_finite_differences():
    critic = _critic()
    g = torch.Generator().manual_seed(0)
    real = torch.randn(6, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(6, 3, generator=g, dtype=torch.float64) + 2.0
    points = interpolate([real], [fake], generator=torch.Generator().manual_seed(5))
    # every point lies on its segment: (p - fake) is parallel to (real - fake) with t in [0, 1]
    t = ((points[0] - fake) / (real - fake)).detach()
    assert torch.allclose(t, t[:, :1].expand_as(t)) and bool(((t >= 0) & (t <= 1)).all())

    penalty = gradient_penalty(critic(points[0]).squeeze(-1), points)
    with torch.no_grad():
        fd = _finite_difference_gradient(critic, points[0].detach())
    expected = (fd.norm(dim=1) - 1.0).square().mean()
    assert float(penalty.detach()) == pytest.approx(float(expected), rel=1e-6)
    # the penalty is differentiable in the critic's weights (double backprop); the output
    # bias does not change the input gradient, so it gets none
    penalty.backward()
    for p in (critic[0].weight, critic[0].bias, critic[2].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert critic[2].bias.grad is None


def test_r1_penalty_matches_finite_differences_in_the_joint_input_space():
    """With two inputs (BiGAN's (x, z)), the norm is over the concatenated gradient."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    z = torch.randn(4, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    out = net(torch.cat([x, z], 1)).squeeze(-1)
    with torch.no_grad():
        fd = _finite_difference_gradient(net, torch.cat([x, z], 1))
    norms = input_gradient_norm(out, [x, z]).detach()
    torch.testing.assert_close(norms, fd.norm(dim=1), rtol=1e-6, atol=0)
    assert float(r1_penalty(out, [x, z]).detach()) == pytest.approx(
        float(fd.square().sum(1).mean())
    )


def test_weight_clipping_keeps_every_weight_in_the_box():
    critic = _critic()
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100.0)
    assert max(float(p.detach().abs().max()) for p in critic.parameters()) > 0.01
    clip_weights_(critic, 0.01)
    for p in critic.parameters():
        assert float(p.detach().abs().max()) <= 0.01
    # weights inside the box are untouched
    inside = [p.detach().clone() * 0 + 0.005 for p in critic.parameters()]
    with torch.no_grad():
        for p, v in zip(critic.parameters(), inside, strict=True):
            p.copy_(v)
    clip_weights_(critic, 0.01)
    for p, v in zip(critic.parameters(), inside, strict=True):
        assert torch.equal(p, v)


def test_ema_follows_its_recurrence():
    current = _critic()
    averaged = copy.deepcopy(current).requires_grad_(False)
    start = [p.detach().clone() for p in averaged.parameters()]
    history = []
    for t in range(1, 40):
        with torch.no_grad():
            for p in current.parameters():
                p.add_(torch.randn_like(p))
        history.append([p.detach().clone() for p in current.parameters()])
        ema_update_(averaged, current, ema_decay(t, 0.9))
    # unrolled: avg_T = prod(beta) * theta_0 + sum_t (1 - beta_t) prod_{s>t} beta_s * theta_t
    betas = [min(0.9, (1 + t) / (10 + t)) for t in range(1, 40)]
    for index, p in enumerate(averaged.parameters()):
        expected = start[index] * math.prod(betas)
        for t, beta in enumerate(betas):
            expected = expected + (1 - beta) * math.prod(betas[t + 1 :]) * history[t][index]
        torch.testing.assert_close(p, expected)
    assert ema_decay(1, 0.999) == pytest.approx(2 / 11) and ema_decay(10**6, 0.999) == 0.999


def test_averaged_copies_follow_their_modules_after_a_conversion_and_a_replacement():
    """The tensors are found once per module, then read where they live: a ``.double()`` that
    replaces the tensors (buffers) and a replaced average are followed, not stale copies."""
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    averaged = AveragedCopies({"net": net})
    start = [p.detach().clone() for p in averaged["net"].parameters()]
    averaged.update_({"net": net}, update=1, decay=0.5)  # beta_1 = 2/11
    for p in net.parameters():
        p.data.add_(1.0)
    net.double(), averaged.double()
    net[1].running_mean.fill_(3.0)
    averaged.update_({"net": net}, update=100, decay=0.5)
    for a, s, p in zip(averaged["net"].parameters(), start, net.parameters(), strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, 0.5 * s.double() + 0.5 * p)  # s = p - 1 after step 1
    assert torch.equal(averaged["net"][1].running_mean, net[1].running_mean)
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    averaged["net"] = copy.deepcopy(other).requires_grad_(False)
    averaged.update_({"net": other}, update=100, decay=0.5)
    for a, p in zip(averaged["net"].parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(a, p)
    with pytest.raises(ValueError, match="averaged parameters"):
        ema_update_(nn.Linear(3, 4), nn.Linear(3, 4, bias=False), 0.5)


def test_learning_rate_schedules():
    assert lr_factor("constant", 0.7) == 1.0
    assert lr_factor("linear", 0.0) == 1.0 and lr_factor("linear", 0.75) == pytest.approx(0.25)
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0)
