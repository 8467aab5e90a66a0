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
        for block, size in zip(self.blocks, reversed(self.sizes[:-1]), strict=True):
            h = block(torch.nn.functional.interpolate(h, size=size, mode="nearest"))
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
        for block, size in zip(self.blocks, reversed(self.sizes[:-1]), strict=True):
            h = block(torch.nn.functional.interpolate(h, size=size, mode="nearest"))
        return self.out(h)
