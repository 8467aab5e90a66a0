r"""The affine map from data units to the scale networks train on, with its log-Jacobian."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AffineNormalizer(nn.Module):
    r"""Elementwise :math:`u = (x - m) / s`, :math:`\log |\det \partial u / \partial x| = -\sum \log s`.

    Images share one scalar ``m``, ``s`` (so pixels keep their relative scale); vectors get
    one per feature. Fitted once from training data by :meth:`fit`; stored as buffers so a
    checkpoint carries them. A density ``q`` on ``u`` gives the data density
    :math:`\log p(x) = \log q(u) - \sum_d \log s_d`.
    """

    def __init__(self, event_shape: tuple[int, ...], per_feature: bool) -> None:
        super().__init__()
        shape = event_shape if per_feature else (1,) * len(event_shape)
        self.event_shape = event_shape
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Set ``m``, ``s`` to the mean and standard deviation of ``x`` (constant features: s = 1)."""
        dims = (0,) if self.shift.shape == self.event_shape else tuple(range(x.dim()))
        mean = x.mean(dim=dims, keepdim=True)[0]
        std = x.std(dim=dims, keepdim=True)[0]
        self.shift.copy_(mean.reshape(self.shift.shape))
        self.scale.copy_(
            torch.where(std > 1e-6, std, torch.ones_like(std)).reshape(self.scale.shape)
        )

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift).div_(self.scale)  # in place on the fresh difference

    def inverse(self, u: Tensor) -> Tensor:
        return u * self.scale + self.shift

    def flat(self) -> tuple[Tensor, Tensor]:
        """``(D,)`` shift and scale of every coordinate, for data flattened to ``(..., D)``."""
        return self.shift.expand(self.event_shape).flatten(), self.scale.expand(
            self.event_shape
        ).flatten()

    def log_abs_det_jacobian(self) -> Tensor:
        r""":math:`-\sum_d \log s_d` over one example's coordinates (a scalar)."""
        n_repeat = 1
        if self.scale.shape != self.event_shape:
            n_repeat = int(torch.Size(self.event_shape).numel())
        return -self.scale.log().sum() * n_repeat
