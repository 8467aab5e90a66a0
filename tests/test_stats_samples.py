"""Sample-based distances: W1, OT, MMD, energy, k-NN KL, learned critics, bootstrap."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch
from torchmetrics.image.kid import poly_mmd

from genlab.errors import ConfigError, DataError
from genlab.stats import (
    PolynomialKernel,
    RBFKernel,
    bootstrap_ci,
    critic_ipm,
    energy_distance,
    kl_gaussians,
    knn_distances,
    knn_kl_divergence,
    mean_and_std,
    median_heuristic,
    mmd2_biased,
    mmd2_unbiased,
    optimal_transport_cost,
    wasserstein_1d,
    wasserstein_distance,
)
from genlab.stats import mmd as mmd_module


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_wasserstein_1d_matches_scipy(rng):
    for n, m in [(1, 1), (5, 9), (300, 170)]:
        u, v = rng.standard_normal(n), rng.exponential(size=m) + 0.3
        assert wasserstein_1d(u, v) == pytest.approx(
            scipy.stats.wasserstein_distance(u, v), abs=1e-9
        )
    ties = np.array([0.0, 0.0, 1.0, 1.0])
    assert wasserstein_1d(ties, np.array([1.0, 1.0])) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(DataError, match="1-D"):
        wasserstein_1d(rng.standard_normal((4, 2)), rng.standard_normal((4, 2)))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_exact_ot_matches_pot_emd2(rng, p):
    x, y = rng.standard_normal((80, 3)), rng.standard_normal((60, 3)) + 0.4
    cost = ot.dist(x, y, metric="euclidean") ** p
    expected = ot.emd2(np.full(80, 1 / 80), np.full(60, 1 / 60), cost)
    assert optimal_transport_cost(x, y, p=p) == pytest.approx(expected, abs=1e-6)
    assert wasserstein_distance(x, y, p=p) == pytest.approx(expected ** (1 / p), abs=1e-6)


def test_sinkhorn_cost_approaches_exact_ot(rng):
    x, y = rng.standard_normal((60, 2)), rng.standard_normal((60, 2)) + 1.0
    exact = optimal_transport_cost(x, y)
    coarse = optimal_transport_cost(x, y, method="sinkhorn", reg=0.1)
    fine = optimal_transport_cost(x, y, method="sinkhorn", reg=0.02)
    assert exact <= fine <= coarse  # the entropic plan is feasible, so its cost is >= OT
    assert fine == pytest.approx(exact, rel=0.04)
    with pytest.raises(ConfigError, match="OT method"):
        optimal_transport_cost(x, y, method="greedy")


def test_wasserstein_1d_branch_of_wasserstein_distance(rng):
    u, v = rng.standard_normal(50), rng.standard_normal(40)
    assert wasserstein_distance(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v))


def brute_force_mmd2(x, y, k, unbiased):
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j or not unbiased)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j or not unbiased)
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if unbiased:
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2 * kxy / (n * m)


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_matches_brute_force_double_sums(rng, unbiased):
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((9, 3)) + 0.5
    estimator = mmd2_unbiased if unbiased else mmd2_biased

    def rbf(a, b):
        return math.exp(-((a - b) ** 2).sum() / (2 * 1.3**2))

    def poly(a, b):
        return (a @ b / 3 + 1.0) ** 3

    assert estimator(x, y, RBFKernel(1.3)) == pytest.approx(
        brute_force_mmd2(x, y, rbf, unbiased), abs=1e-10
    )
    assert estimator(x, y, PolynomialKernel()) == pytest.approx(
        brute_force_mmd2(x, y, poly, unbiased), abs=1e-10
    )


def test_median_heuristic_and_default_kernel(rng):
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((20, 2))
    z = np.concatenate([x, y])
    pairwise = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(50, 1)]
    sigma = float(np.median(pairwise))
    assert median_heuristic(torch.tensor(z)) == pytest.approx(sigma, rel=1e-9)
    assert mmd2_unbiased(x, y) == pytest.approx(mmd2_unbiased(x, y, RBFKernel(sigma)))


def test_polynomial_mmd_matches_torchmetrics_kid_kernel(rng):
    x, y = rng.standard_normal((40, 8)), rng.standard_normal((40, 8)) * 1.2
    expected = float(poly_mmd(torch.tensor(x), torch.tensor(y)))
    assert mmd2_unbiased(x, y, PolynomialKernel()) == pytest.approx(expected, rel=1e-9)


def test_mmd_chunked_equals_unchunked(rng, monkeypatch):
    x, y = rng.standard_normal((37, 2)), rng.standard_normal((23, 2))
    whole = mmd2_unbiased(x, y, RBFKernel(1.0)), energy_distance(x, y)
    monkeypatch.setattr(mmd_module, "CHUNK", 8)
    assert mmd2_unbiased(x, y, RBFKernel(1.0)) == pytest.approx(whole[0], abs=1e-12)
    assert energy_distance(x, y) == pytest.approx(whole[1], abs=1e-12)


def test_unbiased_mmd_is_centred_under_the_null():
    g = torch.Generator().manual_seed(1)
    values = [
        mmd2_unbiased(torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g))
        for _ in range(200)
    ]
    mean, std = mean_and_std(values)
    assert abs(mean) < 3 * std / math.sqrt(len(values))
    assert min(values) < 0  # the U-statistic is unbiased, so it must go negative


def test_energy_distance_matches_scipy(rng):
    u, v = rng.standard_normal(70), rng.standard_normal(50) * 2 + 1
    assert energy_distance(u, v) == pytest.approx(scipy.stats.energy_distance(u, v), abs=1e-9)
    x = rng.standard_normal((30, 4))
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-7)
    assert energy_distance(x, x + 1) > 0.5


def test_sample_inputs_are_checked(rng):
    with pytest.raises(DataError, match="coordinates"):
        mmd2_unbiased(rng.standard_normal((5, 2)), rng.standard_normal((5, 3)))
    with pytest.raises(DataError, match="NaN"):
        energy_distance(np.array([[np.nan], [1.0]]), np.zeros((3, 1)))
    with pytest.raises(DataError, match="at least 2"):
        mmd2_unbiased(np.zeros((1, 2)), np.zeros((3, 2)))


def test_knn_distances_match_brute_force(rng):
    x = torch.tensor(rng.standard_normal((50, 3)))
    d = torch.cdist(x, x)
    d.fill_diagonal_(math.inf)
    expected = d.sort(1).values[:, 2]
    assert torch.allclose(knn_distances(x, x, 3, skip_self=True), expected, atol=1e-9)
    with pytest.raises(DataError, match="nearest neighbours"):
        knn_distances(x, x[:3], 5)


def test_knn_kl_estimates_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3000, 2, generator=g, dtype=torch.float64) * 1.5 + torch.tensor([1.0, 0.0])
    exact = kl_gaussians(np.zeros(2), np.eye(2), np.array([1.0, 0.0]), 2.25 * np.eye(2))
    assert knn_kl_divergence(x, y, k=5) == pytest.approx(exact, abs=0.08)
    assert abs(knn_kl_divergence(x[:1500], x[1500:], k=5)) < 0.08
    with pytest.raises(DataError, match="coincide"):
        knn_kl_divergence(torch.zeros(10, 2), torch.randn(10, 2, generator=g))


# ---- learned critics -----------------------------------------------------------------------


def shifted_gaussians(n, shift, d=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, d, generator=g)
    y[:, 0] += shift
    return x, y


def test_bounded_critic_is_a_lower_bound_on_total_variation():
    x, y = shifted_gaussians(1500, 1.0)
    tv = math.erf(0.5 / math.sqrt(2))  # TV(N(0,1), N(1,1)) = 2 Phi(1/2) - 1
    result = critic_ipm(x, y, "bounded", steps=300, hidden=(32, 32), generator=_g(1))
    assert result.estimate <= tv + 3 * result.std_error
    assert result.estimate >= 0.75 * tv


def test_lipschitz_critic_estimates_w1():
    x, y = shifted_gaussians(1000, 1.0, d=2)
    exact = wasserstein_distance(x[500:], y[500:])  # exact W1 of the held-out samples
    result = critic_ipm(x, y, "lipschitz", steps=200, hidden=(32, 32), generator=_g(2))
    assert result.estimate == pytest.approx(exact, rel=0.2)
    assert result.estimate == pytest.approx(1.0, rel=0.2)  # W1 of a unit shift


def test_neural_net_distance_separates_and_vanishes_under_the_null():
    x, y = shifted_gaussians(800, 1.0, d=2)
    far = critic_ipm(x, y, "neural_net", steps=150, hidden=(32, 32), generator=_g(3))
    near = critic_ipm(
        x,
        shifted_gaussians(800, 0.0, d=2, seed=5)[1],
        "neural_net",
        steps=150,
        hidden=(32, 32),
        generator=_g(3),
    )
    assert far.estimate > 5 * far.std_error
    assert abs(near.estimate) < 3 * near.std_error
    with pytest.raises(ConfigError, match="critic class"):
        critic_ipm(x, y, "gaussian")


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_bootstrap_interval_covers_the_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, generator=g, dtype=torch.float64)
    ci = bootstrap_ci(lambda s: float(s.mean()), x, n_bootstrap=300, generator=g)
    half_width = 1.96 / math.sqrt(400)
    assert ci.low < ci.value < ci.high
    assert ci.high - ci.low == pytest.approx(2 * half_width, rel=0.25)
    two = bootstrap_ci(energy_distance, x[:200], x[200:] + 1, n_bootstrap=50, generator=g)
    assert two.low < two.value < two.high
    assert mean_and_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
