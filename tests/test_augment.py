"""Batched augmentations: exact geometry on known cases, seeded randomness, stated frequencies."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data.augment import (
    affine_transform,
    augment_images,
    augment_vectors,
    cutout,
    gaussian_noise,
    random_affine,
    random_mask,
)
from genlab.errors import DataError


def _params(b: int, angle: float = 0.0, zoom: float = 1.0, shift=(0.0, 0.0)):
    dtype = torch.float64
    return (
        torch.full((b,), angle, dtype=dtype),
        torch.full((b,), zoom, dtype=dtype),
        torch.tensor([shift] * b, dtype=dtype),
    )


@pytest.fixture
def images():
    return torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_identity_and_quarter_turns_are_exact(images):
    torch.testing.assert_close(affine_transform(images, *_params(3)), images)
    # +90 degrees turns the content clockwise on screen (rows point down)
    turned = affine_transform(images, *_params(3, angle=math.pi / 2))
    torch.testing.assert_close(turned, torch.rot90(images, -1, dims=(2, 3)))
    wide = torch.randn(2, 1, 4, 8, dtype=torch.float64)  # a grid in pixel units: no shear
    half_turn = affine_transform(wide, *_params(2, angle=math.pi))
    torch.testing.assert_close(half_turn, torch.rot90(wide, 2, dims=(2, 3)))


def test_integer_shifts_move_pixels_and_bring_in_the_fill(images):
    right = affine_transform(images, *_params(3, shift=(1.0, 0.0)), fill=-5.0)
    torch.testing.assert_close(right[..., 1:], images[..., :-1])
    torch.testing.assert_close(right[..., 0], torch.full_like(right[..., 0], -5.0))
    down = affine_transform(images, *_params(3, shift=(0.0, 2.0)), fill=0.0)
    torch.testing.assert_close(down[..., 2:, :], images[..., :-2, :])
    torch.testing.assert_close(down[..., :2, :], torch.zeros_like(down[..., :2, :]))


def test_zoom_magnifies_about_the_centre():
    """Bilinear resampling is exact on a linear ramp: zoom s maps the value f(p) to f(p / s)."""
    size = 8
    centre = (size - 1) / 2
    rows, cols = torch.meshgrid(
        torch.arange(size, dtype=torch.float64),
        torch.arange(size, dtype=torch.float64),
        indexing="ij",
    )
    ramp = (2.0 * (rows - centre) + 3.0 * (cols - centre) + 1.0).expand(1, 1, size, size)
    zoomed = affine_transform(ramp, *_params(1, zoom=2.0))
    torch.testing.assert_close(zoomed, (ramp - 1.0) / 2 + 1.0)


def test_random_affine_is_seeded_and_each_image_differs(images):
    batch = images[:1].expand(16, -1, -1, -1)
    a = random_affine(batch, torch.Generator().manual_seed(1), min_crop=0.7)
    b = random_affine(batch, torch.Generator().manual_seed(1), min_crop=0.7)
    c = random_affine(batch, torch.Generator().manual_seed(2), min_crop=0.7)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({round(float(view.sum()), 6) for view in a}) == 16  # one draw per image
    still = random_affine(images, torch.Generator(), max_shift=0.0, max_rotation=0.0, min_crop=1.0)
    torch.testing.assert_close(still, images)
    with pytest.raises(DataError, match="min_crop"):
        random_affine(images, torch.Generator(), min_crop=0.0)
    with pytest.raises(DataError, match=r"\(B, C, H, W\)"):
        random_affine(images.flatten(1), torch.Generator())


def test_crops_stay_inside_the_image():
    """A crop never reads beyond the border: a constant image stays constant (fill differs)."""
    ones = torch.ones(256, 1, 8, 8, dtype=torch.float64)
    out = random_affine(
        ones, torch.Generator().manual_seed(0), max_shift=0, max_rotation=0, min_crop=0.3
    )
    # bilinear reads within half a pixel of the border may mix in the fill a little
    assert float(out.min()) > 0.5
    assert float(out[..., 1:-1, 1:-1].min()) == pytest.approx(1.0)


def test_cutout_cuts_one_square_in_every_channel_with_the_stated_frequency():
    x = torch.ones(4000, 3, 8, 8)
    out = cutout(x, 3, torch.Generator().manual_seed(0), prob=0.3, fill=0.0)
    cut = out == 0
    assert torch.equal(cut[:, 0], cut[:, 1]) and torch.equal(cut[:, 0], cut[:, 2])
    per_image = cut[:, 0].flatten(1).sum(1)
    assert int(per_image.max()) == 9  # a whole 3x3 square when it lies inside
    rows_cut = cut[:, 0].any(2).sum(1)[per_image > 0]
    assert int(rows_cut.max()) <= 3  # one square, not scattered pixels
    frequency = float((per_image > 0).double().mean())
    assert abs(frequency - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)
    assert torch.equal(cutout(x, 0, torch.Generator()), x)


def test_noise_and_masking_have_the_stated_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 5)
    noisy = gaussian_noise(x, 0.3, g)
    assert float(noisy.std()) == pytest.approx(0.3, rel=0.02)
    masked = random_mask(torch.ones(20000, 5), 0.25, g, fill=0.0)
    assert float((masked == 0).double().mean()) == pytest.approx(0.25, abs=0.01)
    views = augment_vectors(torch.ones(1000, 4), g, noise=0.1, mask_prob=0.5)
    assert views.shape == (1000, 4) and float((views.abs() < 0.5).double().mean()) > 0.4


def test_composed_image_augmentation_is_seeded(images):
    settings = dict(
        max_shift=1.0,
        max_rotation=12.0,
        min_crop=0.8,
        noise=0.1,
        cutout_size=2,
        cutout_prob=0.5,
        fill=0.0,
    )
    a = augment_images(images, torch.Generator().manual_seed(3), **settings)
    b = augment_images(images, torch.Generator().manual_seed(3), **settings)
    assert torch.equal(a, b) and a.shape == images.shape
    assert not torch.allclose(a, images)
