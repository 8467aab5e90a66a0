"""Convolutional encoder/decoder for ``(C, H, W)`` images of any size.

The encoder halves the spatial size with stride-2 convolutions until it is at most 4, then maps
the feature map to a vector; the decoder retraces the same sizes with nearest-neighbour
upsampling and 3x3 convolutions, so odd sizes (7, 28...) come back exactly. The grid versions
(:class:`ConvGridEncoder`, :class:`ConvGridDecoder`) stop at a feature map instead: a grid of
codes, one per image region (the VQ-VAE's).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.nn.mlp import ACTIVATIONS

# _TAPS[k, r]: the rows r of a 3x3 kernel that a stride-2 transposed convolution's tap k carries
# (nearest_upsampled_conv)
_TAPS = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])


def nearest_upsampled_conv(h: Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> Tensor:
    r"""``conv(interpolate(h, size, mode="nearest"))``, without the upsampled copy when ``size``
    doubles ``h``'s and ``conv`` is a 3x3 convolution with padding 1.

    Output row :math:`2i + a` of the convolution sees rows :math:`2i + a - 1 \dots 2i + a + 1`
    of the upsampled map, which are rows of ``h``: for :math:`a = 0`, row :math:`i - 1` (through
    kernel row :math:`W_0`) and row :math:`i` (through :math:`W_1 + W_2`); for :math:`a = 1`, row
    :math:`i` (:math:`W_0 + W_1`) and row :math:`i + 1` (:math:`W_2`); the same for columns, and
    the upsampled map's zero padding is ``h``'s. A transposed convolution of stride 2 and padding
    1 sends row :math:`i` of its input to output row :math:`o` through its tap
    :math:`k = o + 1 - 2i \in \{0, 1, 2, 3\}`, so with the 4x4 kernel
    :math:`T = S W S^\top`, whose 4x3 matrix :math:`S` of zeros and ones (``_TAPS``) makes the
    taps :math:`W_2,\ W_1 + W_2,\ W_0 + W_1,\ W_0`, it computes the same function of ``conv``'s
    weights (tested to rounding): 16 taps per input pixel where the upsampled convolution has
    36, and no copy of the upsampled input. Any other size or convolution runs as written.
    """
    height, width = h.shape[-2:]
    standard = (3, 3), (1, 1), (1, 1), (1, 1)
    if (
        tuple(size) != (2 * height, 2 * width)
        or (conv.kernel_size, conv.stride, conv.padding, conv.dilation) != standard
        or conv.groups != 1
        or conv.padding_mode != "zeros"
    ):
        return conv(torch.nn.functional.interpolate(h, size=size, mode="nearest"))
    taps = _TAPS.to(conv.weight)
    kernel = torch.einsum("ur,oirs,vs->iouv", taps, conv.weight, taps)  # (in, out, 4, 4)
    return torch.nn.functional.conv_transpose2d(h, kernel, conv.bias, stride=2, padding=1)


def spatial_sizes(height: int, width: int, smallest: int = 4) -> list[tuple[int, int]]:
    """Sizes visited by repeated ``ceil(s / 2)`` halving, from ``(height, width)`` down to <= smallest."""
    sizes = [(height, width)]
    while max(sizes[-1]) > smallest:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


class ConvEncoder(nn.Module):
    """``(B, C, H, W) -> (B, out_features)``; channels double at each halving from ``channels``."""

    def __init__(
        self,
        event_shape: tuple[int, int, int],
        out_features: int,
        channels: int = 32,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = event_shape
        sizes = spatial_sizes(h, w)
        layers: list[nn.Module] = [nn.Conv2d(c, channels, 3, padding=1), ACTIVATIONS[activation]()]
        width = channels
        for _ in sizes[1:]:
            layers += [
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                ACTIVATIONS[activation](),
            ]
            width *= 2
        self.features = nn.Sequential(*layers)
        fh, fw = sizes[-1]
        self.head = nn.Linear(width * fh * fw, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """``(B, in_features) -> (B, C, H, W)``, the mirror image of :class:`ConvEncoder`."""

    def __init__(
        self,
        in_features: int,
        event_shape: tuple[int, int, int],
        channels: int = 32,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = event_shape
        self.sizes = spatial_sizes(h, w)
        width = channels * 2 ** (len(self.sizes) - 1)
        fh, fw = self.sizes[-1]
        self.start_shape = (width, fh, fw)
        self.head = nn.Linear(in_features, width * fh * fw)
        self.blocks = nn.ModuleList()
        for _ in self.sizes[:-1]:
            self.blocks.append(
                nn.Sequential(
                    ACTIVATIONS[activation](), nn.Conv2d(width, width // 2, 3, padding=1)
                )
            )
            width //= 2
        self.out = nn.Sequential(ACTIVATIONS[activation](), nn.Conv2d(width, c, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        h = self.head(z).view(-1, *self.start_shape)  # (B, C0, h0, w0)
        for (activation, conv), size in zip(self.blocks, reversed(self.sizes[:-1]), strict=True):
            h = nearest_upsampled_conv(activation(h), conv, size)  # both commute with upsampling
        return self.out(h)


def halving_sizes(height: int, width: int, grid: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes from ``(height, width)`` down to ``grid`` by ``ceil(s / 2)`` halvings; a grid that
    halving does not reach is a :class:`~genlab.errors.ConfigError` naming those it does."""
    sizes = [(height, width)]
    while sizes[-1] != tuple(grid) and max(sizes[-1]) > 1:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    if sizes[-1] != tuple(grid):
        reachable = ", ".join(f"{h}x{w}" for h, w in sizes)
        raise ConfigError(
            f"a conv grid of codes halves the image: {tuple(grid)} is not reachable from "
            f"{height}x{width}; choose one of {reachable}"
        )
    return sizes


class ConvGridEncoder(nn.Module):
    """``(B, C, H, W) -> (B, out_channels, h, w)``: stride-2 convolutions down to the grid
    ``(h, w)`` (channels doubling from ``channels``), a 3x3 convolution there, a 1x1 output."""

    def __init__(
        self,
        event_shape: tuple[int, int, int],
        out_channels: int,
        grid: tuple[int, int],
        channels: int = 32,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = event_shape
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Conv2d(c, channels, 3, padding=1), act()]
        width = channels
        for _ in halving_sizes(h, w, grid)[1:]:
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), act()]
            width *= 2
        layers += [nn.Conv2d(width, width, 3, padding=1), act(), nn.Conv2d(width, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvGridDecoder(nn.Module):
    """``(B, in_channels, h, w) -> (B, C, H, W)``, the mirror image of :class:`ConvGridEncoder`
    (nearest-neighbour upsampling through the same sizes, then 3x3 convolutions)."""

    def __init__(
        self,
        in_channels: int,
        grid: tuple[int, int],
        event_shape: tuple[int, int, int],
        channels: int = 32,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = event_shape
        act = ACTIVATIONS[activation]
        self.sizes = halving_sizes(h, w, grid)
        width = channels * 2 ** (len(self.sizes) - 1)
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            act(),
            nn.Conv2d(width, width, 3, padding=1),
        )
        self.blocks = nn.ModuleList()
        for _ in self.sizes[:-1]:
            self.blocks.append(nn.Sequential(act(), nn.Conv2d(width, width // 2, 3, padding=1)))
            width //= 2
        self.out = nn.Sequential(act(), nn.Conv2d(width, c, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        h = self.head(z)  # (B, C0, h, w)
        for (activation, conv), size in zip(self.blocks, reversed(self.sizes[:-1]), strict=True):
            h = nearest_upsampled_conv(activation(h), conv, size)
        return self.out(h)
