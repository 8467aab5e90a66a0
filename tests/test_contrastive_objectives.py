"""Contrastive losses against loop-based implementations of their formulas, closed-form minima,
invariances and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.errors import ConfigError, DataError
from genlab.objectives import contrastive_loss, info_nce, nt_xent, ratio_loss


def _unit(x: torch.Tensor) -> list[list[float]]:
    return [[a / math.sqrt(sum(b * b for b in row)) for a in row] for row in x.tolist()]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def loop_info_nce(u, v, tau, symmetric, normalize=True):
    """-log e^{M_ii} / sum_j e^{M_ij} (and the column version), one scalar at a time."""
    u, v = (_unit(u), _unit(v)) if normalize else (u.tolist(), v.tolist())
    n = len(u)
    m = [[_dot(u[i], v[j]) / tau for j in range(n)] for i in range(n)]
    out = []
    for i in range(n):
        rows = -m[i][i] + math.log(sum(math.exp(m[i][j]) for j in range(n)))
        cols = -m[i][i] + math.log(sum(math.exp(m[j][i]) for j in range(n)))
        out.append(0.5 * (rows + cols) if symmetric else rows)
    return torch.tensor(out, dtype=torch.float64)


def loop_nt_xent(z1, z2, tau):
    """SimCLR's l(a) over the 2N views, self excluded, averaged over the two views of an example."""
    z = _unit(torch.cat([z1, z2]))
    n = len(z1)
    losses = []
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        denominator = sum(math.exp(_dot(z[a], z[b]) / tau) for b in range(2 * n) if b != a)
        losses.append(-_dot(z[a], z[positive]) / tau + math.log(denominator))
    return torch.tensor([(losses[i] + losses[n + i]) / 2 for i in range(n)], dtype=torch.float64)


def loop_ratio(u, v, tau):
    u, v = _unit(u), _unit(v)
    n = len(u)
    positive = sum(math.exp(_dot(u[i], v[i]) / tau) for i in range(n))
    negative = sum(math.exp(_dot(u[i], v[j]) / tau) for i in range(n) for j in range(n) if i != j)
    return -math.log(positive / negative)


@pytest.fixture
def pairs():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(7, 5, generator=g, dtype=torch.float64)
    v = u + 0.8 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    return u, v


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_losses_match_their_formulas_computed_by_loops(pairs, tau):
    u, v = pairs
    for symmetric in (True, False):
        torch.testing.assert_close(
            info_nce(u, v, tau, symmetric=symmetric), loop_info_nce(u, v, tau, symmetric)
        )
    torch.testing.assert_close(
        info_nce(u, v, tau, normalize=False), loop_info_nce(u, v, tau, True, normalize=False)
    )
    torch.testing.assert_close(nt_xent(u, v, tau), loop_nt_xent(u, v, tau))
    assert float(ratio_loss(u, v, tau)) == pytest.approx(loop_ratio(u, v, tau), rel=1e-10)
    # the dispatcher: SimCLR views use NT-Xent, pairs the symmetric InfoNCE, the ratio broadcasts
    torch.testing.assert_close(
        contrastive_loss("info_nce", u, v, tau, views=True), nt_xent(u, v, tau)
    )
    torch.testing.assert_close(
        contrastive_loss("info_nce", u, v, tau, views=False), info_nce(u, v, tau)
    )
    assert torch.equal(
        contrastive_loss("ratio", u, v, tau, views=False), ratio_loss(u, v, tau).expand(7)
    )


def test_learnable_temperature_tensor_gets_a_gradient(pairs):
    u, v = pairs
    log_scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    info_nce(u, v, log_scale.neg().exp()).mean().backward()
    assert log_scale.grad is not None and torch.isfinite(log_scale.grad)
    torch.testing.assert_close(
        info_nce(u, v, log_scale.neg().exp()).detach(), loop_info_nce(u, v, 0.1, True)
    )


def _simplex_minimum(n: int, tau: float, negatives_per_other: int) -> float:
    """Loss when the N pairs are aligned at the vertices of a regular simplex (<v_i, v_j> =
    -1/(N-1)): log(1 + c (N-1) exp(-N / ((N-1) tau))) with c negatives per other example."""
    return math.log1p(negatives_per_other * (n - 1) * math.exp(-n / ((n - 1) * tau)))


LOSSES = {"info_nce": info_nce, "nt_xent": nt_xent, "ratio": ratio_loss}
N_PAIRS, DIM, TAU = 4, 3, 0.5
MINIMUM = {
    "info_nce": _simplex_minimum(N_PAIRS, TAU, 1),
    "nt_xent": _simplex_minimum(N_PAIRS, TAU, 2),
    "ratio": math.log(N_PAIRS - 1) - N_PAIRS / ((N_PAIRS - 1) * TAU),
}


def _descend(loss: str, seed: int, steps: int = 300) -> tuple[float, torch.Tensor]:
    """Train free embeddings (u, v) on the loss; return the final loss and cos(u_i, v_i)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(N_PAIRS, DIM, generator=g, dtype=torch.float64).requires_grad_()
    v = torch.randn(N_PAIRS, DIM, generator=g, dtype=torch.float64).requires_grad_()
    optimizer = torch.optim.Adam([u, v], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        LOSSES[loss](u, v, TAU).mean().backward()
        optimizer.step()
    with torch.no_grad():
        return float(LOSSES[loss](u, v, TAU).mean()), torch.cosine_similarity(u, v, dim=1)


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "ratio"])
def test_minimised_by_aligned_embeddings_at_the_simplex(loss):
    """Free embeddings trained on the loss end aligned (u_i = v_i) at the closed-form minimum
    of the regular simplex, and no random configuration does better."""
    final, cosine = _descend(loss, seed=1)
    assert final == pytest.approx(MINIMUM[loss], abs=1e-4)
    assert float(cosine.min()) > 0.999
    draws = torch.randn(200, 2, N_PAIRS, DIM, generator=torch.Generator().manual_seed(3))
    assert all(float(LOSSES[loss](a, b, TAU).mean()) >= MINIMUM[loss] - 1e-6 for a, b in draws)


def test_the_pooled_ratio_has_a_spurious_minimum_that_info_nce_avoids():
    """From this start the ratio loss ends with one pair anti-aligned (cos = -1): the pooled
    numerator is carried by the other pairs. InfoNCE, normalised per example, aligns them all."""
    final, cosine = _descend("ratio", seed=0)
    assert final > MINIMUM["ratio"] + 0.1 and float(cosine.min()) < -0.99
    final, cosine = _descend("info_nce", seed=0)
    assert final == pytest.approx(MINIMUM["info_nce"], abs=1e-4)
    assert float(cosine.min()) > 0.999


def test_aligned_pairs_beat_shuffled_pairs(pairs):
    u, _ = pairs
    shuffled = u[torch.tensor([1, 2, 3, 4, 5, 6, 0])]
    assert float(info_nce(u, u, 0.2).mean()) < float(info_nce(u, shuffled, 0.2).mean())
    assert float(nt_xent(u, u, 0.2).mean()) < float(nt_xent(u, shuffled, 0.2).mean())
    assert float(ratio_loss(u, u, 0.2)) < float(ratio_loss(u, shuffled, 0.2))


def test_invariant_to_a_common_rotation_and_equivariant_to_reordering(pairs):
    u, v = pairs
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    order = torch.randperm(7, generator=g)
    for fn in (info_nce, nt_xent):
        torch.testing.assert_close(fn(u @ q, v @ q, 0.3), fn(u, v, 0.3))
        torch.testing.assert_close(fn(u[order], v[order], 0.3), fn(u, v, 0.3)[order])
        # rotating one side only changes the loss (the check above can fail)
        assert not torch.allclose(fn(u @ q, v, 0.3), fn(u, v, 0.3))
    torch.testing.assert_close(ratio_loss(u @ q, v @ q, 0.3), ratio_loss(u, v, 0.3))
    torch.testing.assert_close(ratio_loss(u[order], v[order], 0.3), ratio_loss(u, v, 0.3))


def test_gradients_match_finite_differences(pairs):
    u, v = (t[:4].clone().requires_grad_() for t in pairs)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.3), (u, v))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (u, v))
    assert torch.autograd.gradcheck(lambda a, b: ratio_loss(a, b, 0.3), (u, v))


def test_a_single_pair_has_no_negatives_and_gives_zero_loss_and_gradient():
    u = torch.randn(1, 4, requires_grad=True)
    v = torch.randn(1, 4, requires_grad=True)
    for kind in ("info_nce", "ratio"):
        for views in (True, False):
            loss = contrastive_loss(kind, u, v, 0.5, views=views)
            assert loss.shape == (1,) and float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
            (grad,) = torch.autograd.grad(loss.sum(), u)
            assert float(grad.abs().max()) < 1e-6


def test_bad_shapes_are_clear_errors():
    with pytest.raises(DataError, match="same shape"):
        info_nce(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(DataError, match="same shape"):
        nt_xent(torch.randn(3, 4, 1), torch.randn(3, 4, 1))
    with pytest.raises(DataError, match="at least 2 pairs"):
        ratio_loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ConfigError, match="unknown contrastive loss"):
        contrastive_loss("triplet", torch.randn(2, 4), torch.randn(2, 4), 0.5, views=True)
