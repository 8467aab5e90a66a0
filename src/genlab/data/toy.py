r"""Embedded 2-D distributions with known densities.

``ring`` and ``grid`` are the mode-collapse benchmarks of the GAN literature (Metz et al., 2017,
arXiv:1611.02163; Srivastava et al., 2017 VEEGAN; Lin et al., 2018 PacGAN):

- ``ring``: 8 Gaussians at :math:`(\cos 2\pi k/8, \sin 2\pi k/8)`, :math:`k = 0..7`, std 0.01
  (the centres come from ``k / 8`` for ``k in range(8)``, not from ``linspace(0, 2pi, 8)``,
  which repeats the first centre and yields only 7 distinct modes);
- ``grid``: 25 Gaussians at :math:`\{-4,-2,0,2,4\}^2`, std 0.05.

``moons`` and ``spirals`` are curves with Gaussian noise, :math:`x = c(s) + \sigma \epsilon`,
whose density :math:`p(x) = \int w(s)\, \mathcal N(x; c(s), \sigma^2 I)\, ds` is computed by
midpoint quadrature with 2,000 nodes per curve (node spacing along the curve below
:math:`\sigma/5`, where the midpoint rule on a Gaussian is accurate to far below 1e-6). ``checkerboard``
is uniform on the 8 dark unit squares of a 4x4 board on :math:`[-2, 2]^2` (density 1/8 there).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class ToyDistribution(abc.ABC):
    """A 2-D distribution that can be sampled and whose log-density is known."""

    mode_centres: Tensor | None = None
    mode_std: float | None = None

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, 2)`` float32 samples."""

    @abc.abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """``(N,)`` log-density of ``(N, 2)`` points (float64 inside, dtype of ``x`` out)."""


class GaussianMixture2D(ToyDistribution):
    r"""Equal-weight isotropic mixture :math:`p(x) = \frac1K \sum_k \mathcal N(x; \mu_k, s^2 I)`."""

    def __init__(self, centres: Tensor, std: float) -> None:
        self.mode_centres = centres.to(torch.float64)
        self.mode_std = std

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.randint(len(self.mode_centres), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.mode_centres[k] + self.mode_std * noise).float()

    def log_prob(self, x: Tensor) -> Tensor:
        k = len(self.mode_centres)
        log_weights = torch.full((k,), -math.log(k), dtype=torch.float64)
        return _isotropic_mixture_log_prob(x, self.mode_centres, self.mode_std, log_weights)


class NoisyCurves(ToyDistribution):
    r"""Curves :math:`c_k(s)`, :math:`s \in [0,1]` with density :math:`w(s)`, plus noise.

    :math:`p(x) = \frac1K \sum_k \int_0^1 w(s)\, \mathcal N(x; c_k(s), \sigma^2 I)\, ds`.
    """

    def __init__(
        self,
        curves: list[Callable[[Tensor], Tensor]],
        noise: float,
        sample_s: Callable[[Tensor], Tensor],
        weight: Callable[[Tensor], Tensor],
        n_nodes: int = 2000,
    ) -> None:
        self.curves = curves
        self.noise = noise
        self.sample_s = sample_s  # inverse CDF of w: U[0,1) -> s
        s = (torch.arange(n_nodes, dtype=torch.float64) + 0.5) / n_nodes
        self.nodes = torch.cat([c(s) for c in curves])  # (K * n_nodes, 2)
        log_w = torch.log(weight(s) / n_nodes / len(curves))
        self.log_node_weights = log_w.repeat(len(curves))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.randint(len(self.curves), (n,), generator=generator)
        s = self.sample_s(torch.rand(n, generator=generator, dtype=torch.float64))
        points = torch.stack([c(s) for c in self.curves])[k, torch.arange(n)]
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (points + self.noise * noise).float()

    def log_prob(self, x: Tensor) -> Tensor:
        return _isotropic_mixture_log_prob(x, self.nodes, self.noise, self.log_node_weights)


class Checkerboard(ToyDistribution):
    """Uniform on the 8 unit squares of a 4x4 board on [-2, 2]^2 whose corner indices sum to even."""

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        square = torch.randint(8, (n,), generator=generator)
        row = square // 2  # 4 rows of 2 dark squares each
        col = 2 * (square % 2) + row % 2
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        corner = torch.stack([col, row], dim=1).to(torch.float64) - 2.0
        return (corner + u).float()

    def log_prob(self, x: Tensor) -> Tensor:
        x64 = x.to(torch.float64)
        inside = (x64.abs() < 2.0).all(dim=1)
        cell = torch.floor(x64 + 2.0).long()
        dark = (cell[:, 0] + cell[:, 1]) % 2 == 0
        out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
        out[inside & dark] = -math.log(8.0)
        return out.to(x.dtype)


def _isotropic_mixture_log_prob(
    x: Tensor, centres: Tensor, std: float, log_weights: Tensor, chunk: int = 512
) -> Tensor:
    r""":math:`\log \sum_k w_k \mathcal N(x; \mu_k, s^2 I)` in 2-D, chunked over ``x``."""
    out = []
    log_norm = -LOG_2PI - 2.0 * math.log(std)
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk].to(torch.float64)
        sq = torch.cdist(xb, centres).square()  # (B, K)
        out.append(torch.logsumexp(log_weights - 0.5 * sq / std**2, dim=1) + log_norm)
    return torch.cat(out).to(x.dtype) if out else x.new_zeros(0)


def _ring() -> ToyDistribution:
    angles = 2.0 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    return GaussianMixture2D(torch.stack([angles.cos(), angles.sin()], dim=1), 0.01)


def _grid() -> ToyDistribution:
    values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    centres = torch.cartesian_prod(values, values)
    return GaussianMixture2D(centres, 0.05)


def _moons() -> ToyDistribution:
    # scikit-learn's make_moons curves, s uniform on [0, 1].
    def upper(s: Tensor) -> Tensor:
        return torch.stack([torch.cos(math.pi * s), torch.sin(math.pi * s)], dim=1)

    def lower(s: Tensor) -> Tensor:
        return torch.stack([1 - torch.cos(math.pi * s), 0.5 - torch.sin(math.pi * s)], dim=1)

    return NoisyCurves([upper, lower], 0.05, sample_s=lambda u: u, weight=torch.ones_like)


def _spirals() -> ToyDistribution:
    # Two arms r = 3 s, angle 3 pi s (+ pi); s = sqrt(u) spreads points evenly along the arms.
    def arm(offset: float) -> Callable[[Tensor], Tensor]:
        def curve(s: Tensor) -> Tensor:
            angle = 3.0 * math.pi * s + offset
            return torch.stack([3.0 * s * torch.cos(angle), 3.0 * s * torch.sin(angle)], dim=1)

        return curve

    return NoisyCurves(
        [arm(0.0), arm(math.pi)], 0.1, sample_s=torch.sqrt, weight=lambda s: 2.0 * s
    )


TOY_DISTRIBUTIONS: dict[str, Callable[[], ToyDistribution]] = {
    "ring": _ring,
    "grid": _grid,
    "moons": _moons,
    "spirals": _spirals,
    "checkerboard": Checkerboard,
}
