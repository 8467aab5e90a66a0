"""Divergences of probability vectors and Gaussian closed forms, against scipy and torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.errors import ConfigError, DataError
from genlab.stats import (
    F_DIVERGENCES,
    FDivergence,
    f_divergence,
    frechet_distance,
    js_divergence,
    kl_divergence,
    kl_gaussians,
    trace_sqrt_product,
    tv_distance,
)
from genlab.stats.histogram import empirical_histograms, histogram_divergence


def random_pmf(rng, k, zeros=0):
    p = rng.random(k)
    p[:zeros] = 0.0
    return p / p.sum()


@pytest.mark.parametrize("zeros", [0, 2])
def test_kl_js_tv_match_scipy(zeros):
    rng = np.random.default_rng(zeros)
    for _ in range(10):
        p, q = random_pmf(rng, 12, zeros), random_pmf(rng, 12)
        assert float(kl_divergence(p, q)) == pytest.approx(scipy.stats.entropy(p, q), abs=1e-9)
        js = scipy.spatial.distance.jensenshannon(p, q) ** 2
        assert float(js_divergence(p, q)) == pytest.approx(js, abs=1e-9)
        tv = 0.5 * scipy.spatial.distance.cityblock(p, q)
        assert float(tv_distance(p, q)) == pytest.approx(tv, abs=1e-9)


def test_unnormalised_weights_are_normalised_like_scipy():
    p, q = np.array([1.0, 2.0, 3.0]), np.array([3.0, 3.0, 1.0])
    assert float(kl_divergence(p, q)) == pytest.approx(scipy.stats.entropy(p, q), abs=1e-12)


def test_f_divergence_instances_equal_their_closed_forms():
    rng = np.random.default_rng(1)
    p, q = random_pmf(rng, 9), random_pmf(rng, 9)
    expected = {
        "kl": scipy.stats.entropy(p, q),
        "reverse_kl": scipy.stats.entropy(q, p),
        "tv": 0.5 * np.abs(p - q).sum(),
        "chi2": ((p - q) ** 2 / q).sum(),
        "hellinger": 0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(),
        "js": scipy.spatial.distance.jensenshannon(p, q) ** 2,
    }
    assert set(expected) == set(F_DIVERGENCES)
    for name, value in expected.items():
        assert float(f_divergence(p, q, name)) == pytest.approx(value, abs=1e-9), name


def test_f_divergence_conventions_off_the_support():
    p, q = [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]  # p has mass where q has none and vice versa
    assert float(f_divergence(p, q, "kl")) == math.inf
    assert float(f_divergence(p, q, "chi2")) == math.inf
    assert float(f_divergence(p, q, "reverse_kl")) == math.inf  # q has mass where p = 0
    assert float(f_divergence(p, q, "tv")) == pytest.approx(0.5)
    assert float(f_divergence(p, q, "js")) == pytest.approx(0.5 * math.log(2))
    disjoint = f_divergence([1.0, 0.0], [0.0, 1.0], "hellinger")
    assert float(disjoint) == pytest.approx(1.0)  # squared Hellinger is at most 1


def test_custom_generator_and_batches():
    squared = FDivergence("squared", lambda t: (t - 1) ** 2, math.inf)
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    out = f_divergence(p, q, squared)
    assert out.shape == (2,) and float(out[1]) == 0.0
    with pytest.raises(ConfigError, match="f\\(1\\)"):
        f_divergence(p, q, FDivergence("bad", lambda t: t, math.inf))
    with pytest.raises(ConfigError, match="unknown"):
        f_divergence(p, q, "wasserstein")


def test_bad_probability_vectors():
    with pytest.raises(DataError, match="non-negative"):
        tv_distance([0.5, -0.5, 1.0], [0.3, 0.3, 0.4])
    with pytest.raises(DataError, match="same outcomes"):
        kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(DataError, match="NaN"):
        js_divergence([np.nan, 1.0], [0.5, 0.5])
    with pytest.raises(DataError, match="zero"):
        js_divergence([0.0, 0.0], [0.5, 0.5])


pmfs = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8).filter(lambda v: sum(v) > 1e-3)


@settings(max_examples=60, deadline=None)
@given(p=pmfs, q=pmfs, name=st.sampled_from(sorted(F_DIVERGENCES)))
def test_divergence_properties(p, q, name):
    k = min(len(p), len(q))
    p, q = np.asarray(p[:k]) + 1e-3, np.asarray(q[:k]) + 1e-3  # full support
    if sum(p) <= 0 or sum(q) <= 0:
        return
    d_pq = float(f_divergence(p, q, name))
    assert d_pq >= -1e-12
    assert float(f_divergence(p, p, name)) == pytest.approx(0.0, abs=1e-12)
    p_n, q_n = p / p.sum(), q / q.sum()
    if np.abs(p_n - q_n).max() > 1e-3:
        assert d_pq > 0  # zero only for equal distributions
    if F_DIVERGENCES[name].symmetric:
        assert float(f_divergence(q, p, name)) == pytest.approx(d_pq, rel=1e-9, abs=1e-12)


def test_kl_is_not_symmetric():
    p, q = [0.9, 0.1], [0.5, 0.5]
    assert float(kl_divergence(p, q)) != pytest.approx(float(kl_divergence(q, p)), rel=1e-3)


# ---- Gaussians -----------------------------------------------------------------------------


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d + 3))
    return a @ a.T / a.shape[1]


def test_kl_gaussians_matches_torch_and_monte_carlo():
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d) + 0.1 * np.eye(d), random_spd(rng, d) + 0.1 * np.eye(d)
    p = torch.distributions.MultivariateNormal(torch.tensor(mu1), torch.tensor(s1))
    q = torch.distributions.MultivariateNormal(torch.tensor(mu2), torch.tensor(s2))
    value = kl_gaussians(mu1, s1, mu2, s2)
    assert value == pytest.approx(float(torch.distributions.kl_divergence(p, q)), rel=1e-10)
    x = p.sample((200_000,))  # global RNG, seeded per test by conftest
    log_ratio = (p.log_prob(x) - q.log_prob(x)).double()
    stderr = float(log_ratio.std()) / math.sqrt(len(x))
    assert abs(float(log_ratio.mean()) - value) < 4 * stderr
    assert kl_gaussians(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(DataError, match="positive definite"):
        kl_gaussians(mu1, np.zeros((d, d)), mu2, s2)


def pytorch_fid_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The formula of pytorch-fid (``fid_score.calculate_frechet_distance``), restated."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("d", [1, 7, 60])
def test_frechet_matches_pytorch_fid_formula(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.3
    s1, s2 = random_spd(rng, d), random_spd(rng, d) * 1.5
    expected = pytorch_fid_frechet(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-4)


def test_frechet_singular_covariance_falls_back_to_eigh():
    rng = np.random.default_rng(3)
    s1 = random_spd(rng, 20, rank=5)  # rank 5: Cholesky fails
    s2 = random_spd(rng, 20)
    mu = np.zeros(20)
    expected = pytorch_fid_frechet(mu, s1, mu, s2)
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-4)
    assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product(s2, s1), rel=1e-8)


def test_frechet_is_closed_form_w2_for_diagonal_gaussians():
    rng = np.random.default_rng(4)
    v1, v2 = rng.random(10) + 0.1, rng.random(10) + 0.1
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)
    s = random_spd(rng, 10)
    assert frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-9)


def test_gaussian_shape_errors():
    with pytest.raises(DataError, match="covariance"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(DataError, match="different dimensions"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(DataError, match="NaN"):
        kl_gaussians(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1))


# ---- histograms of samples -----------------------------------------------------------------


def test_histograms_of_integer_data_are_exact_empirical_pmfs():
    x = np.array([[0, 1], [0, 1], [2, 2], [3, 0]])
    y = np.array([[0, 1], [2, 2], [2, 2], [5, 5]])
    counts_x, counts_y, kind = empirical_histograms(x, y)
    assert kind == "categories" and counts_x.sum() == 4 and len(counts_x) == 4
    # cells (sorted rows): (0,1) (2,2) (3,0) (5,5)
    assert counts_x.tolist() == [2, 1, 1, 0] and counts_y.tolist() == [1, 2, 0, 1]
    p, q = np.array([2, 1, 1, 0]) / 4, np.array([1, 2, 0, 1]) / 4
    assert histogram_divergence(x, y, "tv") == pytest.approx(0.5 * np.abs(p - q).sum())
    assert histogram_divergence(x, y, "kl") == math.inf
    smoothed = histogram_divergence(x, y, "kl", pseudocount=0.5)
    assert smoothed == pytest.approx(scipy.stats.entropy(p * 4 + 0.5, q * 4 + 0.5))


def test_histograms_of_continuous_1d_data_match_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(500), rng.standard_normal(300) + 0.5
    edges = np.linspace(min(x.min(), y.min()), max(x.max(), y.max()), 11)
    counts_x, counts_y, kind = empirical_histograms(x, y, bins=10)
    assert kind == "bins"
    assert counts_x.tolist() == np.histogram(x, edges)[0].tolist()
    assert counts_y.tolist() == np.histogram(y, edges)[0].tolist()
    p, q = np.histogram(x, edges)[0], np.histogram(y, edges)[0]
    expected = scipy.spatial.distance.jensenshannon(p, q) ** 2
    assert histogram_divergence(x, y, "js", bins=10) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(DataError, match="knn-kl"):
        histogram_divergence(rng.standard_normal((50, 4)), rng.standard_normal((50, 4)))
