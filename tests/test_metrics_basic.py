"""Mode coverage and representation metrics."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from genlab.metrics.representation import knn_accuracy, linear_probe_accuracy
from genlab.stats.modes import mode_coverage, mode_coverage_for


def test_true_ring_samples_cover_every_mode(ring):
    result = mode_coverage_for(ring.x_test[:2500], ring.info)
    assert result.modes_captured == 8
    assert result.hq_fraction > 0.98  # 3 std holds 98.9% of a 2-D Gaussian
    assert result.mode_kl < 0.01


def test_collapsed_and_off_mode_samples():
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    std = 0.01
    samples = torch.cat(
        [
            torch.zeros(30, 2),  # all on mode 0
            torch.tensor([[1.0, 0.02]] * 10),  # within 3 std of mode 1
            torch.tensor([[0.5, 0.5]] * 10),  # between modes: low quality
        ]
    )
    result = mode_coverage(samples, centres, std)
    assert result.modes_captured == 2 and result.counts == (30, 10, 0, 0)
    assert result.hq_fraction == pytest.approx(40 / 50)
    q = torch.tensor([0.75, 0.25])
    assert result.mode_kl == pytest.approx(float((q * (4 * q).log()).sum()))
    assert mode_coverage(torch.full((5, 2), 9.0), centres, std).mode_kl == math.inf


def test_linear_probe_and_knn_agree_with_sklearn_on_separable_codes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    z = torch.randn(300, 4, generator=g, dtype=torch.float64) + 3.0 * torch.nn.functional.one_hot(
        y, 4
    )
    probe = linear_probe_accuracy(z[:200], y[:200], z[200:], y[200:])
    scaler = StandardScaler().fit(z[:200].numpy())
    reference = LogisticRegression(max_iter=5000).fit(
        scaler.transform(z[:200].numpy()), y[:200].numpy()
    )
    expected = reference.score(scaler.transform(z[200:].numpy()), y[200:].numpy())
    assert probe == pytest.approx(expected, abs=0.03)
    assert probe > 0.9 and knn_accuracy(z[:200], y[:200], z[200:], y[200:]) > 0.9
    noise = torch.randn(300, 4, generator=g, dtype=torch.float64)
    assert linear_probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.5
