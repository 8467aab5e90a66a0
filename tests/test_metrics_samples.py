"""PRDC against the prdc package, memorisation, and the birthday-paradox support estimate."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from prdc import compute_prdc

from genlab.data.dataset import DataInfo
from genlab.errors import DataError
from genlab.metrics.birthday import birthday_support, duplicate_threshold, first_duplicate
from genlab.metrics.memorization import memorization
from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.report import save_pairs


def reference_prdc(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        return compute_prdc(real, fake, k)


@pytest.mark.parametrize("k", [1, 5])
def test_prdc_equals_the_prdc_package(k):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((600, 16))
    fake = rng.standard_normal((450, 16)) * 1.2 + 0.3
    expected = reference_prdc(real, fake, k)
    result = precision_recall_density_coverage(real, fake, k=k, chunk_size=128)
    for key, value in result.to_json().items():
        assert value == pytest.approx(float(expected[key]), abs=1e-6), key


def test_prdc_limits_and_errors():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((200, 4))
    far = precision_recall_density_coverage(real, real + 100.0, k=3)
    assert far.precision == far.recall == far.density == far.coverage == 0.0
    same = precision_recall_density_coverage(real, rng.standard_normal((200, 4)), k=5)
    assert same.precision > 0.7 and same.recall > 0.7 and 0.7 < same.density < 1.3
    with pytest.raises(DataError, match="at least 6"):
        precision_recall_density_coverage(real[:5], real, k=5)


def test_memorization_detects_copies_and_not_fresh_samples():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(1000, 5, generator=g)
    test = torch.randn(300, 5, generator=g)
    fresh = memorization(torch.randn(300, 5, generator=g), train, test, generator=g)
    assert 0.4 < fresh.fraction_closer_to_train < 0.6 and fresh.p_value > 0.01
    copies = train[:300] + 0.01 * torch.randn(300, 5, generator=g)
    copied = memorization(copies, train, test, generator=g)
    # the training set is subsampled to 300, so about 30% of the copies find their source
    assert copied.fraction_closer_to_train > 0.6 and copied.p_value < 1e-6
    assert copied.distance_ratio < fresh.distance_ratio
    with pytest.raises(DataError, match="coordinates"):
        memorization(torch.zeros(3, 2), train, test)


def test_first_duplicate_scan():
    z = torch.tensor([[0.0], [5.0], [9.0], [5.05], [0.01]], dtype=torch.float64)
    assert first_duplicate(z, 0.1) == (4, 1, 3)  # the 4th sample repeats the 2nd
    assert first_duplicate(z, 0.001) is None


@pytest.mark.parametrize("n_points", [100, 400, 1600])
def test_birthday_estimate_is_within_a_factor_two_of_the_support(n_points):
    g = torch.Generator().manual_seed(n_points)
    real = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    threshold = duplicate_threshold(real)
    stored = torch.randn(n_points, 8, generator=g, dtype=torch.float64)

    def generator_of_stored_points(n, gen):
        noise = 1e-3 * torch.randn(n, 8, generator=gen, dtype=torch.float64)
        return stored[torch.randint(0, n_points, (n,), generator=gen)] + noise

    result = birthday_support(
        generator_of_stored_points, threshold, n_repetitions=40, max_batch=512, generator=g
    )
    assert n_points / 2 <= result.support <= 2 * n_points, result.support
    assert result.duplicate_probability(result.batch_size) >= 0.5
    assert result.duplicate_probability(result.batch_size - 1) < 0.5
    assert len(result.pairs_a) == 40 and float(result.pair_distances.max()) < threshold


def test_birthday_on_a_pool_without_duplicates_and_the_pairs_picture(tmp_path):
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(300, 4, generator=g, dtype=torch.float64)
    result = birthday_support(pool, 1e-6, n_repetitions=5, generator=g)
    assert result.batch_size is None and result.support is None
    assert result.to_json()["birthday_support"] is None
    with pytest.raises(DataError, match="at least 3"):
        duplicate_threshold(pool[:2])
    info = DataInfo("digits", (1, 8, 8), "image", levels=17, value_range=(0.0, 16.0))
    images = torch.rand(3, 1, 8, 8, generator=g) * 16
    path = save_pairs(images, images.flip(0), tmp_path / "pairs.png", info)
    from PIL import Image

    with Image.open(path) as picture:
        assert picture.size[0] > picture.size[1]  # one column per pair
    vectors = save_pairs(pool[:3], pool[3:6], tmp_path / "v.png", DataInfo("v", (4,), "vector"))
    assert vectors.stat().st_size > 0


@pytest.mark.parametrize("k", [1, 3])
def test_prdc_equals_prdc_on_discrete_data_with_duplicates(k):
    rng = np.random.default_rng(10 + k)
    real = rng.integers(0, 3, size=(300, 3)).astype(np.float64)  # 27 cells: many duplicates
    fake = rng.integers(0, 4, size=(250, 3)).astype(np.float64)
    expected = reference_prdc(real, fake, k)
    result = precision_recall_density_coverage(real, fake, k=k, chunk_size=64)
    for key, value in result.to_json().items():
        assert value == pytest.approx(float(expected[key]), abs=1e-6), key
