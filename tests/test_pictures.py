"""What sample pictures show: decoder means or draws, and each sample's nearest training image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.errors import ConfigError
from genlab.report.family import image_pictures, neighbour_strip, picture_samples


@pytest.fixture(scope="module")
def vae(tiny_28):
    return genlab.fit("vae", tiny_28, budget="smoke", architecture="conv", channels=4)


def test_means_are_the_decoder_means_of_the_codes_sample_draws(vae):
    means, caption = picture_samples(vae, 5, generator=torch.Generator().manual_seed(3))
    # codes from the model's prior (on 28x28 images the fitted mixture: genlab.models.code_prior)
    assert vae.prior is not None
    z = vae.draw_codes(5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(means, vae.decode(z))
    assert caption.startswith("decoder means")
    draws, caption = picture_samples(vae, 5, "sample", generator=torch.Generator().manual_seed(3))
    assert torch.equal(draws, vae.sample(5, generator=torch.Generator().manual_seed(3)))
    assert "each pixel drawn independently" in caption
    # the draws scatter around the means: per-pixel noise the mean leaves out
    assert (draws - means).abs().mean() > 1.0


def test_hierarchical_and_vq_means_decode_the_codes_their_samples_draw(digits):
    """HVAE: the means of eps ~ N(0, I) as sample draws it; VQ-VAE: the decoder mean of the
    code grids its prior draws (the same generator state), around which the draws scatter."""
    hvae = genlab.fit("hvae", digits, budget="smoke", seed=0)
    eps = torch.randn(5, hvae.latent_dim, generator=torch.Generator().manual_seed(3))
    means = hvae.sample_means(5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(means, hvae.decode(eps))
    vq = genlab.fit("vqvae", digits, budget="smoke", seed=0)
    empty = torch.zeros(5, *vq.config.grid, dtype=torch.long)
    codes = vq._sample_codes(empty, 0, torch.Generator().manual_seed(3))
    means = vq.sample_means(5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(means, vq.decode(vq.quantizer.embed(codes).flatten(1)))
    draws = vq.sample(5, generator=torch.Generator().manual_seed(3))
    assert (draws - means).abs().mean() > 0.1


def test_families_without_pixel_noise_show_their_samples(tiny_28):
    gan = genlab.fit("gan", tiny_28, budget="smoke")
    shown, caption = picture_samples(gan, 4, generator=torch.Generator().manual_seed(1))
    assert caption == "samples"
    assert torch.equal(shown, gan.sample(4, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(genlab.errors.UnsupportedCapability):
        gan.sample_means(4)


def test_bad_pixels_is_a_clear_error(vae, tiny_28):
    with pytest.raises(ConfigError, match="pixels must be one of"):
        picture_samples(vae, 4, "median")
    with pytest.raises(ConfigError, match="vae's sampler has no option 'steps'; it takes no"):
        picture_samples(vae, 4, options={"steps": 5})  # checked as genlab sample checks them
    with pytest.raises(ConfigError, match="pixels must be one of"):
        genlab.fit("vae", tiny_28, budget="smoke", pixels="median")


def _grid(png: bytes, side: int, n_rows: int, n_columns: int) -> np.ndarray:
    """``(rows, columns, side, side)``: the images of a grid drawn by ``image_grid_png``."""
    canvas = np.asarray(Image.open(io.BytesIO(png)))
    scale = canvas.shape[0] // (n_rows * (side + 1) + 1)
    canvas = canvas[::scale, ::scale]
    step = side + 1
    return np.array(
        [
            [
                canvas[1 + r * step : r * step + step, 1 + c * step : c * step + step]
                for c in range(n_columns)
            ]
            for r in range(n_rows)
        ]
    )


def test_the_neighbour_strip_pairs_each_sample_with_its_nearest_training_image(tiny_28):
    index = [5, 17, 2, 40, 33, 8, 9, 59, 1, 0]
    near = tiny_28.x_train[index] * 0.9 + 10.0  # near the originals, not equal to them
    picture = neighbour_strip(near, tiny_28)
    assert picture.caption.startswith("the first 8 pictures above")
    shown, nearest = _grid(picture.png, 28, 2, 8)
    originals = tiny_28.x_train[index[:8], 0].numpy().astype(np.uint8)
    assert np.array_equal(nearest, originals)
    assert not np.array_equal(shown, originals)


def test_image_pictures_show_means_then_neighbours(vae, tiny_28):
    captions = [p.caption for p in image_pictures(vae, tiny_28, seed=0)]
    assert captions[0].startswith("decoder means") and "nearest training" in captions[1]
    captions = [p.caption for p in image_pictures(vae, tiny_28, seed=0, pixels="sample")]
    assert captions[0].startswith("samples x ~ p(x | z)")
