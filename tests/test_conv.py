"""The convolutional decoders' upsampling: the same function as upsampling then convolving."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.nn.conv import ConvDecoder, nearest_upsampled_conv


@pytest.mark.parametrize(
    ("size", "bias", "height", "width"),
    [((14, 14), True, 7, 7), ((10, 6), False, 5, 3), ((7, 7), True, 4, 4), ((9, 8), True, 4, 4)],
)
def test_upsampled_convolution_is_the_convolution_of_the_upsampled_map(size, bias, height, width):
    """Float64 values and gradients against ``conv(interpolate(h))``: the exact doublings take
    the transposed convolution, the other sizes (4 -> 7, as 28x28 decoders have) the plain
    path."""
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=bias).double()
    h = torch.randn(3, 6, height, width, generator=generator, dtype=torch.float64)
    h.requires_grad_(True)
    expected = conv(nn.functional.interpolate(h, size=size, mode="nearest"))
    got = nearest_upsampled_conv(h, conv, size)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    upstream = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
    wrt = [h, *conv.parameters()]
    for g_got, g_expected in zip(
        torch.autograd.grad(got, wrt, upstream),
        torch.autograd.grad(expected, wrt, upstream),
        strict=True,
    ):
        torch.testing.assert_close(g_got, g_expected, rtol=0, atol=1e-11)


def test_other_convolutions_run_as_written():
    """A 5x5 kernel or a stride is not the 3x3 case the phases are derived for."""
    generator = torch.Generator().manual_seed(1)
    h = torch.randn(2, 4, 6, 6, generator=generator, dtype=torch.float64)
    for conv in (nn.Conv2d(4, 3, 5, padding=2), nn.Conv2d(4, 3, 3, padding=1, stride=2)):
        conv = conv.double()
        expected = conv(nn.functional.interpolate(h, size=(12, 12), mode="nearest"))
        torch.testing.assert_close(nearest_upsampled_conv(h, conv, (12, 12)), expected)


def test_the_decoder_of_28x28_images_is_unchanged_as_a_function():
    """ConvDecoder visits 4 -> 7 -> 14 -> 28: one plain upsampling, two doublings."""
    torch.manual_seed(0)
    decoder = ConvDecoder(8, (1, 28, 28), channels=4).double()
    z = torch.randn(5, 8, dtype=torch.float64)
    h = decoder.head(z).view(-1, *decoder.start_shape)
    for block, size in zip(decoder.blocks, reversed(decoder.sizes[:-1]), strict=True):
        h = block(nn.functional.interpolate(h, size=size, mode="nearest"))
    torch.testing.assert_close(decoder(z), decoder.out(h), rtol=0, atol=1e-12)


def test_under_autocast_the_result_has_the_convolutions_dtype():
    conv = nn.Conv2d(6, 5, 3, padding=1)
    h = torch.randn(3, 6, 7, 7, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = conv(nn.functional.interpolate(h, size=(14, 14), mode="nearest"))
        got = nearest_upsampled_conv(h, conv, (14, 14))
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=0.02, atol=0.02)
