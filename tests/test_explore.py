"""Exploration: interpolation paths, attribute vectors, neighbours, completion grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

import genlab
from genlab.explore import (
    apply_attribute,
    attribute_vector,
    completion_grid,
    interpolate,
    lerp,
    nearest_neighbours,
    slerp,
)
from genlab.samplers import top_half_mask


def test_lerp_and_slerp_endpoints_and_geometry():
    z0, z1 = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    t = torch.linspace(0, 1, 5)
    for path in (lerp(z0, z1, t), slerp(z0, z1, t)):
        torch.testing.assert_close(path[0], z0)
        torch.testing.assert_close(path[-1], z1)
    # between unit codes, slerp sweeps the angle uniformly: 0, 22.5, 45, 67.5, 90 degrees
    path = slerp(z0, z1 / 2, t)[:, 0]
    angles = torch.atan2(path[:, 1], path[:, 0])
    torch.testing.assert_close(angles, t * math.pi / 2)
    # equal-norm endpoints stay on the sphere; the linear path cuts inside it
    w1 = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(slerp(z0, w1, t).norm(dim=-1), torch.ones(5, 1))
    assert lerp(z0, w1, t)[2].norm() < 0.75


def test_slerp_of_parallel_codes_falls_back_to_lerp():
    z = torch.tensor([[1.0, 1.0]])
    torch.testing.assert_close(
        slerp(z, 2 * z, torch.tensor([0.5])), lerp(z, 2 * z, torch.tensor([0.5]))
    )


def test_nearest_neighbours_match_sklearn():
    rng = np.random.default_rng(0)
    reference, queries = rng.normal(size=(500, 6)), rng.normal(size=(3000, 6))
    d, i = nearest_neighbours(torch.from_numpy(queries), torch.from_numpy(reference), k=3)
    d_ref, i_ref = NearestNeighbors(n_neighbors=3).fit(reference).kneighbors(queries)
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-9)
    assert (i.numpy() == i_ref).mean() > 0.999  # ties aside


@pytest.fixture(scope="module")
def pca_model():
    return genlab.fit("pca", "digits", latent_dim=8)


def test_interpolation_decodes_a_path_between_two_examples(pca_model, digits):
    x0, x1 = digits.x_test[0], digits.x_test[1]
    path = interpolate(pca_model, x0, x1, steps=6, method="spherical")
    assert path.shape == (6, 1, 8, 8)
    ends = pca_model.decode(pca_model.encode(torch.stack([x0, x1])))
    torch.testing.assert_close(path[[0, -1]], ends, rtol=1e-4, atol=1e-4)


def test_attribute_vector_moves_codes_towards_the_target_class(pca_model, digits):
    codes = pca_model.encode(digits.x_train)
    vector = attribute_vector(codes, digits.y_train, source=1, target=0)
    ones = digits.x_test[digits.y_test == 1][:10]
    moved = apply_attribute(pca_model, ones, vector, scales=(0.0, 1.0))
    zero_mean = digits.x_train[digits.y_train == 0].mean(0)
    before = (moved[0] - zero_mean).square().mean()
    after = (moved[1] - zero_mean).square().mean()
    assert after < 0.5 * before


def test_completion_grid_keeps_the_observed_half(pca_model, digits):
    mask = top_half_mask(digits.info.event_shape)
    assert mask.sum() == 32 and bool(mask[0, :4].all()) and not bool(mask[0, 4:].any())
    x = digits.x_test[:3]
    grid = completion_grid(pca_model, x, mask, n=4, generator=torch.Generator().manual_seed(0))
    rows = grid.view(3, 6, 1, 8, 8)
    assert torch.equal(rows[:, -1], x)  # the original closes each row
    assert torch.equal(rows[:, 1:5][..., :4, :], x[:, None, :, :4, :].expand(3, 4, 1, 4, 8))


def test_completion_needs_the_capability(digits):
    ae = genlab.fit("ae", digits, budget="smoke")
    with pytest.raises(genlab.UnsupportedCapability, match="sample_conditional"):
        completion_grid(ae, digits.x_test[:2], top_half_mask(digits.info.event_shape))
