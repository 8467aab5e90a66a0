r"""Paths between codes: linear and spherical interpolation, decoded to data."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.models.base import GenerativeModel

Method = Literal["linear", "spherical"]
METHODS: tuple[str, ...] = get_args(Method)


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    r""":math:`(1 - t) z_0 + t z_1` for each ``t``; ``(len(t), *z0.shape)``."""
    t = t.reshape(-1, *([1] * z0.dim())).to(z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    r"""Spherical interpolation (White, 2016, arXiv:1609.04468), along the last axis:

    .. math::
        \mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0
        + \frac{\sin(t\Omega)}{\sin\Omega} z_1, \qquad
        \cos\Omega = \frac{\langle z_0, z_1\rangle}{\lVert z_0\rVert \lVert z_1\rVert}.

    Under a Gaussian prior most mass lies near a sphere; the linear path cuts through its
    low-density interior, the spherical one stays near it. Falls back to :func:`lerp` when
    the codes are (anti-)parallel.
    """
    t = t.reshape(-1, *([1] * z0.dim())).to(z0)
    cos = (z0 * z1).sum(-1, keepdim=True) / (
        z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True)
    )
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin
    return torch.where(sin.abs() < 1e-6, lerp(z0, z1, t.flatten()), spherical)


@torch.no_grad()
def interpolate(
    model: GenerativeModel,
    start: Tensor,
    end: Tensor,
    steps: int = 8,
    method: Method = "linear",
    *,
    codes: bool = False,
) -> Tensor:
    """Decoded path between two examples (encoded first) or, with ``codes=True``, two codes.

    Returns ``(steps, *event_shape)``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; choose one of {', '.join(METHODS)}")
    if not model.capabilities.decode:
        raise model.unsupported("decode")
    if codes:
        z0, z1 = start, end
    else:
        z0, z1 = model.encode(torch.stack([start, end]).to(model.device))
    t = torch.linspace(0, 1, steps, device=z0.device)
    path = (lerp if method == "linear" else slerp)(z0, z1, t)
    return model.decode(path)
