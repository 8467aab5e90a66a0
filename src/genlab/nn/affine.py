r"""The elementwise affine map of couplings and MAF layers, with its soft-clamped log-scale.

Shared by the layers one by one (:mod:`genlab.nn.flows`) and by their fused form
(:mod:`genlab.nn.fused_couplings`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def soft_clamp(raw: Tensor, bound: float) -> Tensor:
    r"""Soft clamp of a log-scale to :math:`(-c, c)` with slope 1 at zero.

    .. math::
        s = c \tanh(\tilde s / c), \qquad \frac{ds}{d\tilde s}\Big|_{\tilde s = 0} = 1,

    so near zero :math:`s \approx \tilde s` and the conditioner's learning rate on the scales
    is the optimizer's (:math:`c \tanh(\tilde s)` has slope :math:`c` there: an effective
    :math:`c`-fold learning rate), while :math:`|s| < c` keeps narrow modes from blowing up.
    """
    return torch.tanh(raw * (1.0 / bound)) * bound


def affine_transform(
    x: Tensor, raw_scale: Tensor, shift: Tensor, bound: float, free: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""The elementwise affine map of couplings and MAF layers, with its log-determinant.

    .. math::
        s = f \odot c \tanh(\tilde s / c), \qquad z = x \odot e^{s} + t \odot f, \qquad
        \log |\det J| = \sum_d s_d,

    where :func:`soft_clamp` keeps the log-scale in :math:`(-c, c)` (``bound``) for stability
    on narrow modes with slope 1 at zero, and the 0/1 mask :math:`f` (``free``) marks the
    transformed coordinates (:math:`f = 1` when ``free`` is ``None``).

    Arguments:
        x: ``(B, *event)`` inputs.
        raw_scale: unconstrained log-scales :math:`\tilde s`, shape of ``x``.
        shift: :math:`t`, shape of ``x``.
        bound: :math:`c > 0`.
        free: :math:`f`, broadcastable to ``x``, or ``None`` (every coordinate is transformed).

    Returns:
        ``z`` of the shape of ``x`` and the ``(B,)`` log-determinants.
    """
    scale = soft_clamp(raw_scale, bound)
    if free is not None:
        scale, shift = scale * free, shift * free
    z = torch.addcmul(shift, x, torch.exp(scale))
    return z, scale.flatten(1).sum(1)


__all__ = ["affine_transform", "soft_clamp"]
