"""Chunked metrics give the unchunked answer when blocks are forced to be tiny."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.metrics.prdc import precision_recall_density_coverage
from genlab.stats import kernels
from genlab.stats.knn import knn_distances


@pytest.fixture
def tiny_blocks(monkeypatch):
    """At most 10 distances per block: 1 row per block against 37 reference rows."""
    monkeypatch.setattr(kernels, "BLOCK_ELEMENTS", 10)


def test_block_rows_caps_the_block_size(tiny_blocks):
    assert kernels.block_rows(37, 1024) == 1
    assert kernels.block_rows(3, 1024) == 3
    assert kernels.block_rows(0, 5) == 5


@pytest.mark.parametrize("skip_self", [False, True])
def test_knn_distances_in_tiny_blocks_equal_the_full_matrix(tiny_blocks, skip_self):
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(37, 3, generator=generator, dtype=torch.float64)
    query = (
        reference if skip_self else torch.randn(23, 3, generator=generator, dtype=torch.float64)
    )
    full = torch.cdist(query, reference)
    if skip_self:
        full.fill_diagonal_(float("inf"))
    expected = full.sort(dim=1).values[:, 2]
    torch.testing.assert_close(knn_distances(query, reference, 3, skip_self=skip_self), expected)


def test_prdc_in_tiny_blocks_equals_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((60, 4)), 1.2 * rng.standard_normal((50, 4)) + 0.3
    one_block = precision_recall_density_coverage(real, fake, k=3).to_json()
    monkeypatch.setattr(kernels, "BLOCK_ELEMENTS", 10)
    assert precision_recall_density_coverage(real, fake, k=3).to_json() == one_block
