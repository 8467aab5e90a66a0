r"""Denoising networks of diffusion models: a timestep embedding, a residual MLP and a small U-Net.

Every denoiser maps :math:`(x_t, t)` to ``out_factor`` outputs per input coordinate (the
prediction, and the variance interpolation when it is learned): ``(N, D) -> (N, k D)`` for the
MLP, ``(N, C, H, W) -> (N, k C, H, W)`` for the U-Net. Their last layers start at zero, so an
untrained denoiser predicts 0 (Ho et al.'s initialisation).

A class-conditional denoiser (``classes`` :math:`C > 0`, classifier-free guidance) also takes
``(N,)`` labels in :math:`0..C`, where :math:`C` is the null token "no label": a learned
embedding of the label (:class:`LabelEmbedding`) is added to the timestep embedding, so every
block that reads the time reads the label too.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762 (sinusoidal
    embedding).
    Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015, arXiv:1505.04597.
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239 (the U-Net of diffusion models: residual blocks, group norm, timestep
    embedding added in every block, self-attention at low resolution).
    Wu & He, "Group Normalization", ECCV 2018, arXiv:1803.08494.
    Ho & Salimans, "Classifier-Free Diffusion Guidance", 2021, arXiv:2207.12598 (the null
    label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.nn.conv import nearest_upsampled_conv
from genlab.nn.mlp import ACTIVATIONS, Activation

REFERENCE_STEPS = 1000  # timesteps are embedded as t * 1000 / T, whatever T is


def zero_(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero (a residual branch or head that starts silent)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class TimestepEmbedding(nn.Module):
    r"""``(N,)`` timesteps -> ``(N, dim)``: sinusoids, then a two-layer MLP.

    .. math::
        e(t)_{2i} = \sin(s\, t\, \omega_i), \quad e(t)_{2i+1} = \cos(s\, t\, \omega_i), \qquad
        \omega_i = 10000^{-i/(d/2)}, \quad s = 1000 / T,

    so the embedding of a noise level does not depend on the number of steps :math:`T`.

    Example:
        >>> TimestepEmbedding(32, total=100)(torch.tensor([0, 99])).shape
        torch.Size([2, 32])
    """

    def __init__(self, dim: int, total: int, activation: Activation = "silu") -> None:
        super().__init__()
        half = dim // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
        self.register_buffer(
            "frequencies", frequencies * REFERENCE_STEPS / total, persistent=False
        )
        self.net = nn.Sequential(
            nn.Linear(2 * half, dim), ACTIVATIONS[activation](), nn.Linear(dim, dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        angles = t.to(self.frequencies.dtype)[:, None] * self.frequencies  # (N, half)
        return self.net(torch.cat([angles.sin(), angles.cos()], 1))


class LabelEmbedding(nn.Embedding):
    r"""``(N,)`` labels in :math:`0..C` -> ``(N, dim)``: one learned row per class and one,
    row :math:`C`, for the null token :math:`\varnothing` ("no label").

    The rows start at zero, so an untrained conditional denoiser is the unconditional one.

    Example:
        >>> LabelEmbedding(10, 32)(torch.tensor([3, 10])).shape
        torch.Size([2, 32])
    """

    def __init__(self, classes: int, dim: int) -> None:
        super().__init__(classes + 1, dim)
        nn.init.zeros_(self.weight)
        self.null = classes

    def drop(self, labels: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
        r"""``(N,)`` the labels, each replaced by the null token with probability :math:`p`:
        :math:`y' = \varnothing` if :math:`u < p` else :math:`y`, :math:`u \sim U[0, 1)`
        independently per row (the label dropout that trains one network to be both
        :math:`\hat\epsilon(x_t, y)` and :math:`\hat\epsilon(x_t, \varnothing)`)."""
        u = torch.rand(labels.shape, generator=generator, device=labels.device)
        return torch.where(u < p, torch.full_like(labels, self.null), labels)


def step_embedding(
    time: TimestepEmbedding, label: LabelEmbedding | None, t: Tensor, labels: Tensor | None
) -> Tensor:
    r""":math:`e = e_t(t) + e_y(y)`: the timestep's embedding plus the label's, if any."""
    if (label is None) != (labels is None):
        raise ValueError("labels go to a class-conditional denoiser, and only to one")
    return time(t) if label is None else time(t) + label(labels)


class ResidualMLPBlock(nn.Module):
    r""":math:`h' = W_s h + W_2\, \mathrm{drop}(\phi(W_1 \phi(\mathrm{LN}(h)) + W_e e))`, ``W_2`` zero at start."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        embed: int,
        activation: Activation,
        dropout: float,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.first = nn.Linear(in_features, out_features)
        self.embed = nn.Linear(embed, out_features)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)
        self.second = zero_(nn.Linear(out_features, out_features))
        self.skip = (
            nn.Identity() if in_features == out_features else nn.Linear(in_features, out_features)
        )

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        inner = self.act(self.first(self.act(self.norm(h))) + self.embed(e))
        return self.skip(h) + self.second(self.drop(inner))


class FourierFeatures(nn.Module):
    r"""``(N, D) -> (N, D (1 + 2F))``: each coordinate with its sinusoids at :math:`F` octaves,

    .. math::
        \big(x,\ \sin(2^k \pi x),\ \cos(2^k \pi x)\big)_{k = 0..F-1},

    so that an MLP on low-dimensional inputs can represent detail finer than its smooth
    functions of :math:`x` resolve (Tancik et al. 2020; the toy diffusion models' input
    embedding). :math:`F = 0` is the identity.

    Example:
        >>> FourierFeatures(3)(torch.zeros(4, 2)).shape
        torch.Size([4, 14])
    """

    def __init__(self, octaves: int) -> None:
        super().__init__()
        self.register_buffer(
            "frequencies", math.pi * 2.0 ** torch.arange(octaves), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        angles = (x[:, :, None] * self.frequencies).flatten(1)  # (N, D F)
        return torch.cat([x, angles.sin(), angles.cos()], 1)


class MLPDenoiser(nn.Module):
    """``(N, D), (N,) -> (N, out_factor * D)``: residual MLP blocks of widths ``hidden``.

    Arguments:
        features: :math:`D`.
        total: the number of timesteps :math:`T`.
        hidden: widths of the blocks (one block each).
        out_factor: outputs per coordinate.
        embed: width of the timestep embedding.
        octaves: :class:`FourierFeatures` of the input (0: the input as it is).
        classes: :math:`C` labels (and the null token) embedded beside the timestep (0: none).

    Example:
        >>> net = MLPDenoiser(2, total=50, hidden=(16, 16))
        >>> net(torch.zeros(3, 2), torch.tensor([0, 1, 49])).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        features: int,
        total: int,
        hidden: Sequence[int] = (256, 256, 256),
        out_factor: int = 1,
        embed: int = 128,
        activation: Activation = "silu",
        dropout: float = 0.0,
        octaves: int = 0,
        classes: int = 0,
    ) -> None:
        super().__init__()
        self.time = TimestepEmbedding(embed, total, activation)
        self.label = LabelEmbedding(classes, embed) if classes else None
        self.fourier = FourierFeatures(octaves)
        self.input = nn.Linear(features * (1 + 2 * octaves), hidden[0])
        widths = [hidden[0], *hidden]
        self.blocks = nn.ModuleList(
            ResidualMLPBlock(a, b, embed, activation, dropout)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.output = nn.Sequential(
            nn.LayerNorm(hidden[-1]),
            ACTIVATIONS[activation](),
            zero_(nn.Linear(hidden[-1], out_factor * features)),
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        e = step_embedding(self.time, self.label, t, labels)
        h = self.input(self.fourier(x))
        for block in self.blocks:
            h = block(h, e)
        return self.output(h)


def _groups(channels: int) -> int:
    """The most groups (at most 32) that divide ``channels``, with at least 4 channels each where possible."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


class ResidualConvBlock(nn.Module):
    r"""GroupNorm, SiLU, 3x3 conv, + the projected timestep embedding, GroupNorm, SiLU, dropout,
    3x3 conv (zero at start), plus a (1x1-projected) skip."""

    def __init__(self, in_channels: int, out_channels: int, embed: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )
        self.act = nn.SiLU()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        inner = self.conv1(self.act(self.norm1(h))) + self.embed(e)[:, :, None, None]
        inner = self.conv2(self.drop(self.act(self.norm2(inner))))
        return self.skip(h) + inner


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual (output zero at start)."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.heads = heads if channels % heads == 0 else 1
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        n, c, height, width = h.shape
        qkv = self.qkv(self.norm(h)).view(n, 3, self.heads, c // self.heads, height * width)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (N, heads, HW, c / heads)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)  # (N, heads, HW, c/heads)
        return h + self.out(attended.transpose(-1, -2).reshape(n, c, height, width))


class UNet(nn.Module):
    """``(N, C, H, W), (N,) -> (N, out_factor * C, H, W)``, a small U-Net for 8x8 to 28x28 images.

    The resolution halves (stride-2 convolution) while both sides are even and above 4:
    8 -> 4, 28 -> 14 -> 7; level ``i`` has ``channels * 2**i`` channels and ``blocks``
    residual blocks on the way down, ``blocks`` more (taking the skip connections) on the way
    up; the middle has two residual blocks with self-attention between them when ``attention``
    (the lowest resolution). Upsampling is nearest-neighbour then a 3x3 convolution.
    ``classes`` :math:`C > 0` embeds labels beside the timestep (module docstring).

    ``patch`` :math:`p > 1` runs the network on :math:`p \\times p` patches folded into channels
    (space-to-depth, ``(C, H, W) -> (p^2 C, H / p, W / p)``, unfolded again at the output), as
    simple diffusion does at high resolution (Hoogeboom et al., 2023): a 28x28 digit becomes
    4 x 14 x 14, every level a quarter of the pixels and one level fewer (14 -> 7; 0.2M
    parameters at 16 channels against 0.68M), a training step about five times faster than at
    full resolution (``python -m benchmarks --only denoiser``).

    Example:
        >>> net = UNet((1, 8, 8), total=50, channels=8, blocks=1)
        >>> net(torch.zeros(2, 1, 8, 8), torch.tensor([0, 49])).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        event_shape: tuple[int, int, int],
        total: int,
        channels: int = 64,
        blocks: int = 2,
        out_factor: int = 1,
        embed: int = 128,
        attention: bool = False,
        dropout: float = 0.0,
        classes: int = 0,
        patch: int = 1,
    ) -> None:
        super().__init__()
        c, height, width = event_shape
        if height % patch or width % patch:
            raise ValueError(f"patch {patch} does not divide the image's {height}x{width} pixels")
        self.patch = patch
        c, height, width = c * patch**2, height // patch, width // patch
        self.sizes = [(height, width)]
        while all(s % 2 == 0 and s > 4 for s in self.sizes[-1]):
            self.sizes.append((self.sizes[-1][0] // 2, self.sizes[-1][1] // 2))
        widths = [channels * 2**i for i in range(len(self.sizes))]
        self.time = TimestepEmbedding(embed, total)
        self.label = LabelEmbedding(classes, embed) if classes else None
        self.input = nn.Conv2d(c, channels, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, width = [channels], channels
        for i, level_width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(ResidualConvBlock(width, level_width, embed, dropout))
                width = level_width
                skips.append(width)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.middle = nn.ModuleList(
            [ResidualConvBlock(width, width, embed, dropout) for _ in range(2)]
        )
        self.attention = SelfAttention2d(width) if attention else nn.Identity()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, level_width in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(ResidualConvBlock(width + skips.pop(), level_width, embed, dropout))
                width = level_width
            if i > 0:
                self.upsample.append(nn.Conv2d(width, width, 3, padding=1))
        self.blocks = blocks
        self.output = nn.Sequential(
            nn.GroupNorm(_groups(width), width),
            nn.SiLU(),
            zero_(nn.Conv2d(width, out_factor * c, 3, padding=1)),
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        e = step_embedding(self.time, self.label, t, labels)
        h = self.input(nn.functional.pixel_unshuffle(x, self.patch))
        skips = [h]
        down, downsample = iter(self.down), iter(self.downsample)
        for i in range(len(self.sizes)):
            for _ in range(self.blocks):
                h = next(down)(h, e)
                skips.append(h)
            if i < len(self.sizes) - 1:
                h = next(downsample)(h)
                skips.append(h)
        h = self.middle[0](h, e)
        h = self.middle[1](self.attention(h), e)
        up, upsample = iter(self.up), iter(self.upsample)
        for i in reversed(range(len(self.sizes))):
            for _ in range(self.blocks + 1):
                h = next(up)(torch.cat([h, skips.pop()], 1), e)
            if i > 0:
                h = nearest_upsampled_conv(h, next(upsample), self.sizes[i - 1])
        return nn.functional.pixel_shuffle(self.output(h), self.patch)
