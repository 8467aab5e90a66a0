r"""Markov chain Monte Carlo used by conditional samplers: SIR initialisation + MALA.

Metropolis-adjusted Langevin (Roberts & Tweedie, 1996) targets a density :math:`\pi(u)` known up
to a constant: propose

.. math::
    u' = u + \epsilon \nabla \log \pi(u) + \sqrt{2\epsilon}\, \xi, \qquad \xi \sim \mathcal N(0, I),

and accept with probability :math:`\min\{1, \frac{\pi(u') q(u \mid u')}{\pi(u) q(u' \mid u)}\}`,
:math:`\log q(u' \mid u) = -\lVert u' - u - \epsilon \nabla \log\pi(u) \rVert^2 / (4\epsilon)`.
The accept/reject step makes :math:`\pi` exactly invariant whatever the step size. During burn-in
each chain's :math:`\log\epsilon` follows a Robbins-Monro recursion towards the acceptance rate
0.574, optimal for MALA (Roberts & Rosenthal, 1998); afterwards it is frozen.

Gradient steps cannot hop between separated modes, so chains start from sampling-importance-
resampling (SIR, Rubin 1988): ``n_candidates`` draws from a broad Gaussian :math:`g`, resampled
with weights :math:`\pi / g`. In low dimension this gets the modes' weights right; in high
dimension the weights degenerate and SIR is just a good start.

Every function works on a batch of independent chains, ``(chains, d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LogDensity = Callable[[Tensor], Tensor]  # (chains, d) -> (chains,)
TARGET_ACCEPTANCE = 0.574


def _value_and_grad(log_density: LogDensity, u: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        value = log_density(u)
        (grad,) = torch.autograd.grad(value.sum(), u)
    return value.detach(), grad.detach()


def mala(
    log_density: LogDensity,
    u: Tensor,
    *,
    steps: int,
    burn_in: int,
    step_size: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Run MALA chains from ``u``; returns (final states, acceptance rate after burn-in per chain).

    Arguments:
        log_density: unnormalised log-density of a batch of states.
        u: ``(chains, d)`` initial states.
        steps: total transitions (the last state of each chain is returned).
        burn_in: transitions during which step sizes adapt (must be < steps).
        step_size: initial :math:`\\epsilon`.
    """
    log_eps = torch.full((u.shape[0], 1), math.log(step_size), device=u.device, dtype=u.dtype)
    value, grad = _value_and_grad(log_density, u)
    accepted = torch.zeros(u.shape[0], device=u.device, dtype=u.dtype)
    for t in range(steps):
        eps = log_eps.exp()
        noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        proposal = u + eps * grad + (2 * eps).sqrt() * noise
        value_p, grad_p = _value_and_grad(log_density, proposal)
        forward = -(proposal - u - eps * grad).square().sum(1) / (4 * eps[:, 0])
        backward = -(u - proposal - eps * grad_p).square().sum(1) / (4 * eps[:, 0])
        log_ratio = value_p + backward - value - forward
        log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
        uniform = torch.rand(u.shape[0], generator=generator, device=u.device, dtype=u.dtype)
        accept = uniform.log() < log_ratio
        u = torch.where(accept[:, None], proposal, u)
        value = torch.where(accept, value_p, value)
        grad = torch.where(accept[:, None], grad_p, grad)
        if t < burn_in:  # Robbins-Monro on log step size
            rate = log_ratio.clamp(max=0).exp()
            log_eps = log_eps + (rate - TARGET_ACCEPTANCE)[:, None] / math.sqrt(t + 1)
        else:
            accepted += accept.to(u.dtype)
    return u.detach(), accepted / max(steps - burn_in, 1)


def sir(
    log_density: LogDensity,
    loc: Tensor,
    scale: Tensor,
    chains: int,
    *,
    n_candidates: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``(chains, d)`` draws by sampling-importance-resampling from :math:`g = \mathcal N(loc, scale^2)`.

    Each chain draws ``n_candidates`` from :math:`g` and keeps one with probability
    :math:`\propto \pi(u)/g(u)`. ``log_density`` is called on ``(chains * n_candidates, d)``.
    """
    d = loc.shape[-1]
    eps = torch.randn(
        chains, n_candidates, d, generator=generator, device=loc.device, dtype=loc.dtype
    )
    candidates = loc + scale * eps  # (chains, M, d)
    log_g = -0.5 * eps.square().sum(-1) - scale.log().sum(-1)  # up to a constant
    with torch.no_grad():
        log_pi = log_density(candidates.reshape(-1, d)).view(chains, n_candidates)
    log_w = torch.nan_to_num(log_pi - log_g, nan=-math.inf)
    log_w = torch.where(torch.isinf(log_w).all(1, keepdim=True), torch.zeros_like(log_w), log_w)
    pick = torch.multinomial(torch.softmax(log_w, dim=1), 1, generator=generator).squeeze(1)
    return candidates[torch.arange(chains, device=loc.device), pick]
