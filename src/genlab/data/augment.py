r"""Random data augmentations as batched tensor operations, for contrastive learning.

Every function transforms a whole batch with a few tensor operations (no Python loop over
examples), draws all its randomness from the ``generator`` it is given (same generator state,
same views) and follows the device of its input. They live beside :func:`genlab.data.dequantize`
because, like it, they are random transforms of the data in the training loop, with no
parameters to learn (``nn/`` holds learnable building blocks).

Images are ``(B, C, H, W)``; vectors are ``(B, D)``. The functions work in whatever units they
are given (genlab's contrastive families apply them to normalised data): ``fill`` is the value
of the background in those units, which fills pixels brought in from outside the image and
the cut-out squares.

References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
    arXiv:2002.05709 (section 3 and appendix A: crops, colour, blur, noise).
    DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with Cutout",
    arXiv:1708.04552.
    Jaderberg et al., "Spatial Transformer Networks", arXiv:1506.02025 (the affine sampling
    grid used by :func:`affine_transform`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from genlab.errors import DataError


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise DataError(f"image augmentation needs (B, C, H, W) images, got {tuple(x.shape)}")


def _uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator) -> Tensor:
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def affine_transform(
    x: Tensor, angle: Tensor, zoom: Tensor, shift: Tensor, *, fill: float = 0.0
) -> Tensor:
    r"""Rotate, zoom and shift each image by its own parameters (bilinear resampling).

    In pixel coordinates centred on the image (:math:`p = (\text{column}, \text{row})`, rows
    pointing down) the output pixel :math:`p` reads the input at

    .. math::
        p_{\text{in}} = \frac{1}{s} R(\theta)^{\top} (p - t), \qquad
        R(\theta) = \begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta
        \end{pmatrix},

    so the content at :math:`q` moves to :math:`s R(\theta) q + t`: it is rotated by
    :math:`\theta` (clockwise on screen, as rows point down), magnified by :math:`s` about the
    centre (:math:`s > 1` is a centred crop of side :math:`1/s` resized to the full image) and
    moved by :math:`t` pixels. Pixels read from outside the image take the value ``fill``. The
    grid is built in pixel units, so rotations of non-square images are not sheared.

    Arguments:
        x: ``(B, C, H, W)`` images.
        angle: ``(B,)`` rotation :math:`\theta` in radians.
        zoom: ``(B,)`` magnification :math:`s > 0`.
        shift: ``(B, 2)`` translation :math:`t` in pixels, (columns, rows).
        fill: background value.

    Returns:
        ``(B, C, H, W)`` transformed images.
    """
    _check_images(x)
    b, _, h, w = x.shape
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    # R^T (p - t) / s in affine_grid's normalised units (pixel * 2 / size): with
    # D = diag(w, h) / 2 the linear part is D^-1 R^T D / s and the offset -D^-1 R^T t / s
    offset_x = -(cos * shift[:, 0] + sin * shift[:, 1]) * 2 / w
    offset_y = -(-sin * shift[:, 0] + cos * shift[:, 1]) * 2 / h
    theta = torch.stack(
        [
            torch.stack([cos, sin * h / w, offset_x], dim=1),
            torch.stack([-sin * w / h, cos, offset_y], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), [b, 1, h, w], align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    *,
    max_shift: float = 1.0,
    max_rotation: float = 12.0,
    min_crop: float = 1.0,
    fill: float = 0.0,
) -> Tensor:
    r"""Random shift, small rotation and random resized crop, in one resampling per batch.

    Per image: :math:`\theta \sim U[-\theta_{\max}, \theta_{\max}]` (``max_rotation`` in
    degrees); crop area fraction :math:`a \sim U[a_{\min}, 1]` (``min_crop``), i.e. zoom
    :math:`s = a^{-1/2}`, with the crop centre uniform over the positions that keep the crop
    inside the image; plus a shift :math:`\sim U[-m, m]^2` pixels (``max_shift``). See
    :func:`affine_transform` for the map. ``min_crop = 1`` disables cropping.

    Arguments:
        x: ``(B, C, H, W)`` images.
        generator: source of all randomness.
        max_shift: largest translation in pixels along each axis.
        max_rotation: largest rotation in degrees.
        min_crop: smallest crop area as a fraction of the image, in (0, 1].
        fill: background value.

    Returns:
        ``(B, C, H, W)`` augmented images.
    """
    _check_images(x)
    if not 0 < min_crop <= 1:
        raise DataError(f"min_crop must be in (0, 1], got {min_crop}")
    b, _, h, w = x.shape
    angle = _uniform(b, -1.0, 1.0, x, generator) * math.radians(max_rotation)
    zoom = _uniform(b, min_crop, 1.0, x, generator).rsqrt()
    # the crop of side size/zoom, centred at c, stays inside when |c| <= (size - size/zoom)/2;
    # reading the input at c for the output centre means a shift t = -zoom R c
    room = (1 - 1 / zoom)[:, None] * x.new_tensor([w, h]) / 2  # (B, 2)
    c = (2 * torch.rand(b, 2, generator=generator, device=x.device, dtype=x.dtype) - 1) * room
    cos, sin = angle.cos(), angle.sin()
    rotated = torch.stack([cos * c[:, 0] - sin * c[:, 1], sin * c[:, 0] + cos * c[:, 1]], dim=1)
    jitter = 2 * torch.rand(b, 2, generator=generator, device=x.device, dtype=x.dtype) - 1
    shift = jitter * max_shift - zoom[:, None] * rotated
    return affine_transform(x, angle, zoom, shift, fill=fill)


def gaussian_noise(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    r""":math:`x + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`, any shape."""
    if std == 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def cutout(
    x: Tensor, size: int, generator: torch.Generator, *, prob: float = 1.0, fill: float = 0.0
) -> Tensor:
    r"""Cut-out: set a ``size`` x ``size`` square to ``fill`` in each image with probability ``prob``.

    The square's centre is uniform over the pixels, so it may be partly outside the image
    (DeVries & Taylor, arXiv:1708.04552, section 3.1). All channels are cut.

    Arguments:
        x: ``(B, C, H, W)`` images.
        size: side of the square in pixels (0 disables).
        generator: source of all randomness.
        prob: probability that an image is cut.
        fill: value of the cut pixels.
    """
    _check_images(x)
    if size <= 0 or prob <= 0:
        return x
    b, _, h, w = x.shape
    top = torch.randint(h, (b, 1), generator=generator, device=x.device) - size // 2
    left = torch.randint(w, (b, 1), generator=generator, device=x.device) - size // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size)  # (B, W)
    chosen = torch.rand(b, 1, 1, generator=generator, device=x.device) < prob  # (B, 1, 1)
    box = in_rows[:, :, None] & in_cols[:, None, :] & chosen  # (B, H, W)
    return x.masked_fill(box[:, None], fill)


def random_mask(
    x: Tensor, prob: float, generator: torch.Generator, *, fill: float = 0.0
) -> Tensor:
    r"""Set each coordinate to ``fill`` independently with probability ``prob`` (feature masking)."""
    if prob <= 0:
        return x
    drop = torch.rand(x.shape, generator=generator, device=x.device) < prob
    return x.masked_fill(drop, fill)


def augment_images(
    x: Tensor,
    generator: torch.Generator,
    *,
    max_shift: float,
    max_rotation: float,
    min_crop: float,
    noise: float,
    cutout_size: int,
    cutout_prob: float,
    fill: float,
) -> Tensor:
    """:func:`random_affine`, then :func:`cutout`, then :func:`gaussian_noise`."""
    if max_shift > 0 or max_rotation > 0 or min_crop < 1:
        x = random_affine(
            x,
            generator,
            max_shift=max_shift,
            max_rotation=max_rotation,
            min_crop=min_crop,
            fill=fill,
        )
    x = cutout(x, cutout_size, generator, prob=cutout_prob, fill=fill)
    return gaussian_noise(x, noise, generator)


def augment_vectors(
    x: Tensor, generator: torch.Generator, *, noise: float, mask_prob: float, fill: float = 0.0
) -> Tensor:
    """:func:`random_mask`, then :func:`gaussian_noise`."""
    return gaussian_noise(random_mask(x, mask_prob, generator, fill=fill), noise, generator)
