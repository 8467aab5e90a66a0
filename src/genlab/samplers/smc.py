r"""Sequential Monte Carlo pieces: the effective sample size and systematic resampling.

A particle filter carries :math:`K` particles with log-weights :math:`\log w_k`; when the
effective sample size

.. math::
    \mathrm{ESS} = \frac{(\sum_k w_k)^2}{\sum_k w_k^2} \in [1, K]

falls below a fraction of :math:`K`, it resamples: particle :math:`k` is copied a number of
times whose expectation is :math:`K w_k / \sum_j w_j`, and the weights are reset to equal.
Systematic resampling draws one uniform :math:`u \sim U[0, 1)` per filter and takes the
particles whose cumulative normalised weight interval contains :math:`(u + i)/K`,
:math:`i = 0..K-1`: unbiased, with less variance than multinomial resampling.

Every function works on a batch of independent filters, ``(filters, K)``.

References:
    Kitagawa, "Monte Carlo filter and smoother for non-Gaussian nonlinear state space
    models", J. Computational and Graphical Statistics 5(1), 1996 (systematic resampling).
    Doucet & Johansen, "A tutorial on particle filtering and smoothing: fifteen years later",
    2009 (adaptive resampling on the ESS).
"""

from __future__ import annotations

import torch
from torch import Tensor


def effective_sample_size(log_weights: Tensor) -> Tensor:
    r"""``(filters,)`` :math:`(\sum_k w_k)^2 / \sum_k w_k^2` of ``(filters, K)`` log-weights.

    Example:
        >>> float(effective_sample_size(torch.zeros(1, 4))[0])
        4.0
    """
    return torch.exp(2 * torch.logsumexp(log_weights, 1) - torch.logsumexp(2 * log_weights, 1))


def systematic_resample(log_weights: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``(filters, K)`` indices of the particles each new particle copies (systematic resampling).

    Arguments:
        log_weights: ``(filters, K)`` unnormalised log-weights (a filter whose weights are all
            ``-inf`` keeps its particles).
    """
    filters, k = log_weights.shape
    finite = torch.isfinite(log_weights).any(1, keepdim=True)
    log_weights = torch.where(finite, log_weights, torch.zeros_like(log_weights))
    cumulative = torch.softmax(log_weights.double(), 1).cumsum(1)
    cumulative[:, -1] = 1.0  # rounding must not leave the last interval short of 1
    u = torch.rand(filters, 1, generator=generator, device=log_weights.device, dtype=torch.float64)
    points = (u + torch.arange(k, device=log_weights.device, dtype=torch.float64)) / k
    return torch.searchsorted(cumulative, points).clamp(max=k - 1)
