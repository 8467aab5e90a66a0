r"""Measurements :math:`y = f(x)` of data: what posterior sampling conditions on.

Every operator maps a batch of data ``(B, *event_shape)`` to measurements ``(B, M)``. The
built-in ones are linear, :math:`f(x) = A x` on flattened data, and say so: :meth:`Operator.matrix`
builds :math:`A` by applying :math:`f` to the standard basis, which the closed-form Gaussian
posterior of probabilistic PCA needs (:func:`~genlab.samplers.gaussian.gaussian_posterior`).

- :class:`Mask`: the observed coordinates (inpainting);
- :class:`Downsample`: average pooling over ``factor x factor`` blocks (super-resolution);
- :class:`Blur`: a normalised Gaussian blur with zero padding (deblurring);
- :class:`Projection`: :math:`M` random Gaussian projections, :math:`A_{ij} \sim \mathcal N(0, 1/M)`
  (compressed sensing, Bora et al., 2017);
- :class:`Function`: any differentiable function of the user's (not assumed linear).

:func:`parse_operator` reads the command line's ``--operator`` (``downsample:2``, ``blur:5``,
``projection:20``, ``mask:top``).

References:
    Bora, Jalal, Price & Dimakis, "Compressed Sensing using Generative Models", ICML 2017,
    arXiv:1703.03208.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from genlab.errors import ConfigError, DataError
from genlab.samplers.completion import top_half_mask


class Operator(abc.ABC):
    """A measurement ``(B, *event_shape) -> (B, M)``; ``linear`` ones are :math:`x \\mapsto Ax`."""

    linear: ClassVar[bool] = True

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        self.event_shape = tuple(event_shape)

    @abc.abstractmethod
    def apply(self, x: Tensor) -> Tensor:
        """``(B, *event_shape)`` -> ``(B, M)``."""

    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """A short name, as :func:`parse_operator` reads it (``downsample:2``)."""

    def __call__(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise DataError(
                f"operator {self.spec}: data has shape {tuple(x.shape)}, expected (batch, "
                f"{', '.join(map(str, self.event_shape))})"
            )
        return self.apply(x)

    def matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """``(M, D)`` the matrix :math:`A` of a linear operator, from the standard basis."""
        if not self.linear:
            raise ConfigError(f"operator {self.spec} is not linear: it has no matrix")
        d = math.prod(self.event_shape)
        basis = torch.eye(d, dtype=dtype).view(d, *self.event_shape)
        return self.apply(basis).T.contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, event_shape={self.event_shape})"


class Mask(Operator):
    """:math:`y = x_o`, the coordinates where ``observed`` is True."""

    def __init__(self, observed: Tensor, name: str = "mask") -> None:
        super().__init__(tuple(observed.shape))
        self.observed = observed.bool().flatten()
        self.name = name

    @property
    def spec(self) -> str:
        return self.name

    def apply(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, self.observed.to(x.device)]


class Downsample(Operator):
    """Average pooling of images over ``factor x factor`` blocks: a low-resolution copy."""

    def __init__(self, event_shape: tuple[int, ...], factor: int) -> None:
        super().__init__(event_shape)
        if len(self.event_shape) != 3:
            raise ConfigError(f"downsample needs images (C, H, W), got {self.event_shape}")
        if factor < 1 or self.event_shape[1] % factor or self.event_shape[2] % factor:
            raise ConfigError(
                f"downsample:{factor}: the factor must divide the image size "
                f"{self.event_shape[1]}x{self.event_shape[2]}"
            )
        self.factor = factor

    @property
    def spec(self) -> str:
        return f"downsample:{self.factor}"

    def apply(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.factor).flatten(1)

    def upsample(self, y: Tensor) -> Tensor:
        """Bicubic upsampling of measurements back to ``event_shape`` (the classical baseline)."""
        c, h, w = self.event_shape
        low = y.view(-1, c, h // self.factor, w // self.factor)
        return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)


class Blur(Operator):
    r"""Gaussian blur, :math:`k_{ij} \propto e^{-(i^2 + j^2)/(2 s^2)}` over ``size x size``, zero padding."""

    def __init__(self, event_shape: tuple[int, ...], size: int, std: float | None = None) -> None:
        super().__init__(event_shape)
        if len(self.event_shape) != 3:
            raise ConfigError(f"blur needs images (C, H, W), got {self.event_shape}")
        if size < 1 or size % 2 == 0:
            raise ConfigError(f"blur:{size}: the kernel size must be odd and positive")
        self.size, self.std = size, std if std is not None else size / 4
        offsets = torch.arange(size, dtype=torch.float64) - size // 2
        kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None] ** 2) / (2 * self.std**2))
        self.kernel = kernel / kernel.sum()

    @property
    def spec(self) -> str:
        return f"blur:{self.size}"

    def apply(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.device, x.dtype).expand(c, 1, self.size, self.size)
        return F.conv2d(x, weight, padding=self.size // 2, groups=c).flatten(1)


class Projection(Operator):
    r""":math:`y = Ax`, :math:`M` rows :math:`A_{i\cdot} \sim \mathcal N(0, I/M)` drawn from ``seed``."""

    def __init__(self, event_shape: tuple[int, ...], m: int, seed: int = 0) -> None:
        super().__init__(event_shape)
        if m < 1:
            raise ConfigError(f"projection:{m}: the number of measurements must be >= 1")
        d = math.prod(self.event_shape)
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(m, d, generator=generator, dtype=torch.float64) / math.sqrt(m)
        self.m, self.seed = m, seed

    @property
    def spec(self) -> str:
        return f"projection:{self.m}"

    def apply(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.to(x.device, x.dtype).T


class Function(Operator):
    """A differentiable function of the user's, ``(B, *event_shape) -> (B, M)``; not assumed linear."""

    linear = False

    def __init__(
        self, event_shape: tuple[int, ...], fn: Callable[[Tensor], Tensor], name: str = "f"
    ) -> None:
        super().__init__(event_shape)
        self.fn, self.name = fn, name

    @property
    def spec(self) -> str:
        return self.name

    def apply(self, x: Tensor) -> Tensor:
        return self.fn(x).flatten(1)


def parse_operator(spec: str, event_shape: tuple[int, ...]) -> Operator:
    """An operator from the command line's ``NAME[:ARG[:ARG]]``.

    ``downsample:F``, ``blur:SIZE[:STD]``, ``projection:M[:SEED]``, ``mask:top``.
    """
    name, _, rest = spec.partition(":")
    args = [a for a in rest.split(":") if a] if rest else []
    try:
        if name == "downsample" and len(args) == 1:
            return Downsample(event_shape, int(args[0]))
        if name == "blur" and len(args) in (1, 2):
            return Blur(event_shape, int(args[0]), float(args[1]) if len(args) == 2 else None)
        if name == "projection" and len(args) in (1, 2):
            return Projection(event_shape, int(args[0]), int(args[1]) if len(args) == 2 else 0)
        if name == "mask" and args == ["top"]:
            return Mask(top_half_mask(event_shape), "mask:top")
    except ValueError:
        pass
    raise ConfigError(
        f"unknown operator {spec!r}; use downsample:F, blur:SIZE[:STD], projection:M[:SEED] "
        "or mask:top"
    )
