"""Streaming statistics, Frechet distance, KID and FID-infinity against references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import _compute_fid
from torchmetrics.image.kid import poly_mmd

from genlab.errors import DataError
from genlab.metrics.features import GaussianStatistics, all_features, feature_statistics
from genlab.metrics.frechet import (
    fid_infinity,
    frechet_feature_distance,
    kernel_inception_distance,
)
from genlab.stats import frechet_distance


def pytorch_fid(act1, act2):
    """pytorch-fid's statistics (np.mean, np.cov) and sqrtm formula, restated with scipy."""
    mu1, mu2 = act1.mean(0), act2.mean(0)
    sigma1, sigma2 = np.cov(act1, rowvar=False), np.cov(act2, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def correlated(rng, n, d, shift=0.0):
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mixing + 5.0 + shift  # far from the origin on purpose


def test_streaming_statistics_equal_numpy():
    rng = np.random.default_rng(0)
    x = correlated(rng, 1000, 6)
    stats = GaussianStatistics()
    for chunk in np.array_split(x, 7):
        stats.update(chunk)
    assert stats.n == 1000
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    one_pass = feature_statistics(torch.tensor(x), chunk_size=64)
    np.testing.assert_allclose(one_pass.covariance, stats.covariance, rtol=1e-10, atol=1e-12)
    with pytest.raises(DataError, match="at least 2"):
        _ = GaussianStatistics().mean
    with pytest.raises(DataError, match="size 3"):
        stats.update(np.zeros((2, 3)))
    with pytest.raises(DataError, match="NaN"):
        stats.update(np.full((2, 6), np.nan))


def test_frechet_of_features_matches_pytorch_fid_and_torchmetrics():
    rng = np.random.default_rng(1)
    a, b = correlated(rng, 800, 32), correlated(rng, 600, 32, shift=0.2)
    value = frechet_feature_distance(a, b, chunk_size=100)
    assert value == pytest.approx(pytorch_fid(a, b), rel=1e-4)
    ta, tb = torch.tensor(a), torch.tensor(b)
    reference = _compute_fid(ta.mean(0), ta.T.cov(), tb.mean(0), tb.T.cov())
    assert value == pytest.approx(float(reference), rel=1e-4)


def test_frechet_with_an_extractor_and_on_gaussian_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20000, 3, generator=g, dtype=torch.float64) * 2 + 1
    exact = frechet_distance(np.zeros(3), np.eye(3), np.ones(3), 4 * np.eye(3))  # = 3 + 3
    assert exact == pytest.approx(6.0)
    assert frechet_feature_distance(x, y) == pytest.approx(exact, rel=0.03)

    def double(batch):
        return 2 * batch

    assert frechet_feature_distance(x, y, double) == pytest.approx(
        4 * frechet_feature_distance(x, y), rel=1e-9
    )
    assert all_features(x[:10], double).shape == (10, 3)


def test_kid_is_the_mean_of_torchmetrics_poly_mmd_over_the_same_subsets():
    rng = np.random.default_rng(2)
    real = torch.tensor(rng.standard_normal((300, 8)))
    fake = torch.tensor(rng.standard_normal((250, 8)) * 1.3)
    result = kernel_inception_distance(
        real, fake, n_subsets=5, subset_size=100, generator=torch.Generator().manual_seed(7)
    )
    g = torch.Generator().manual_seed(7)
    expected = []
    for _ in range(5):
        r = real[torch.randperm(300, generator=g)[:100]]
        f = fake[torch.randperm(250, generator=g)[:100]]
        expected.append(float(poly_mmd(r, f)))
    assert result.mean == pytest.approx(np.mean(expected), rel=1e-9)
    assert result.std == pytest.approx(np.std(expected, ddof=1), rel=1e-9)
    small = kernel_inception_distance(real[:50], fake[:60], subset_size=1000)
    assert small.subset_size == 25 and small.std > 0


def test_fid_infinity_removes_the_small_sample_bias():
    g = torch.Generator().manual_seed(0)
    d = 16
    real = torch.randn(20000, d, generator=g, dtype=torch.float64)
    fake = torch.randn(4000, d, generator=g, dtype=torch.float64)
    fake[:, 0] += 0.5
    exact = 0.25  # W2^2 between N(0, I) and N(0.5 e1, I)
    at_small_n = frechet_feature_distance(real, fake[:1000])
    result = fid_infinity(real, fake, sizes=[500, 1000, 2000, 4000], generator=g)
    assert result.slope > 0  # the Frechet distance falls as N grows
    assert abs(result.fid_infinity - exact) < 0.5 * abs(at_small_n - exact)
    with pytest.raises(DataError, match="sizes"):
        fid_infinity(real, fake, sizes=[10])
