r"""Positive-definite kernels for MMD and KID, with the median heuristic for the RBF bandwidth.

- RBF: :math:`k(x, y) = \exp\!\big(-\|x-y\|^2 / (2\sigma^2)\big)`; with ``bandwidth=None``,
  :math:`\sigma` is the median pairwise distance of the pooled sample (Gretton et al. 2012).
- Polynomial: :math:`k(x, y) = (\gamma\, x^\top y + c)^{\text{degree}}`, by default
  :math:`\gamma = 1/d`, :math:`c = 1`, degree 3, the kernel of KID (Binkowski et al. 2018).

References:
    Gretton et al., "A kernel two-sample test", JMLR 2012.
    Garreau, Jitkrittum & Kanagawa, "Large sample analysis of the median heuristic", 2017,
    arXiv:1707.07269.
    Binkowski et al., "Demystifying MMD GANs", ICLR 2018, arXiv:1801.01401.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.config import check

MEDIAN_MAX_POINTS = 2000
#: Most pairwise values one block of a chunked computation holds (128 MiB in float32), so
#: that memory stays bounded however many reference rows there are.
BLOCK_ELEMENTS = 2**25


def block_rows(columns: int, most: int) -> int:
    """Rows per block: a ``(rows, columns)`` block holds at most :data:`BLOCK_ELEMENTS`
    values; at least 1 row and at most ``most``."""
    return max(1, min(most, BLOCK_ELEMENTS // max(columns, 1)))


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    r""":math:`\|x_i - y_j\|^2` as ``(n, m)``, via :math:`\|x\|^2+\|y\|^2-2x^\top y` (clamped at 0).

    The squared norms come from ``einsum``, not ``y.square().sum(1)``: a temporary as large as
    ``y`` on every call of a chunked loop fragments the heap (glibc), and the process grew by
    ``y``'s size per block (5.5 GB for k-NN on 100,000 x 64 features).
    """
    sq = torch.addmm(torch.einsum("ij,ij->i", y, y)[None, :], x, y.T, alpha=-2.0)  # (n, m)
    return sq.add_(torch.einsum("ij,ij->i", x, x)[:, None]).clamp_min_(0.0)


def median_heuristic(z: Tensor, max_points: int = MEDIAN_MAX_POINTS) -> float:
    """Median of the pairwise distances :math:`\\|z_i - z_j\\|`, :math:`i < j`.

    Above ``max_points`` rows it uses ``max_points`` evenly spaced rows (deterministic).
    A degenerate sample (all points equal) gives 1.0.
    """
    if len(z) > max_points:
        z = z[torch.linspace(0, len(z) - 1, max_points, device=z.device).long()]
    distances = squared_distances(z, z)
    upper = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    values = distances[upper[0], upper[1]]
    median = float(values.median().sqrt()) if len(values) else 0.0
    return median if median > 0 else 1.0


@dataclass(frozen=True)
class RBFKernel:
    r"""Gaussian kernel :math:`\exp(-\|x-y\|^2/(2\sigma^2))`; ``bandwidth`` :math:`\sigma`, or
    ``None`` for the median heuristic on the pooled sample (see :meth:`fitted`)."""

    bandwidth: float | None = None

    def __post_init__(self) -> None:
        check(
            self.bandwidth is None or self.bandwidth > 0,
            f"RBF bandwidth must be positive, got {self.bandwidth}",
        )

    def fitted(self, pooled: Tensor) -> RBFKernel:
        """This kernel with its bandwidth fixed (median heuristic on ``pooled`` if unset)."""
        if self.bandwidth is not None:
            return self
        return RBFKernel(median_heuristic(pooled))

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Gram matrix ``(n, m)``; the bandwidth must be set (call :meth:`fitted` first)."""
        if self.bandwidth is None:
            raise ValueError("RBFKernel: call .fitted(pooled) to set the bandwidth first")
        # in place on the fresh distance block: half the time of allocating two more blocks
        return squared_distances(x, y).mul_(-0.5 / self.bandwidth**2).exp_()

    def diagonal(self, x: Tensor) -> Tensor:
        """:math:`k(x_i, x_i) = 1`."""
        return torch.ones(len(x), dtype=x.dtype, device=x.device)


@dataclass(frozen=True)
class PolynomialKernel:
    r"""Polynomial kernel :math:`(\gamma x^\top y + c)^{\text{degree}}`; ``gamma=None`` means
    :math:`1/d`."""

    degree: int = 3
    gamma: float | None = None
    coef: float = 1.0

    def __post_init__(self) -> None:
        check(self.degree >= 1, f"polynomial degree must be >= 1, got {self.degree}")
        check(self.gamma is None or self.gamma > 0, f"gamma must be positive, got {self.gamma}")

    def fitted(self, pooled: Tensor) -> PolynomialKernel:
        """This kernel with :math:`\\gamma = 1/d` filled in when unset."""
        if self.gamma is not None:
            return self
        return dataclasses.replace(self, gamma=1.0 / pooled.shape[1])

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        gamma = 1.0 / x.shape[1] if self.gamma is None else self.gamma
        return torch.addmm(
            torch.full((), self.coef, dtype=x.dtype, device=x.device), x, y.T, alpha=gamma
        ).pow_(self.degree)

    def diagonal(self, x: Tensor) -> Tensor:
        gamma = 1.0 / x.shape[1] if self.gamma is None else self.gamma
        return (gamma * x.square().sum(1) + self.coef) ** self.degree


Kernel = RBFKernel | PolynomialKernel
KERNELS: dict[str, type[RBFKernel] | type[PolynomialKernel]] = {
    "rbf": RBFKernel,
    "polynomial": PolynomialKernel,
}
