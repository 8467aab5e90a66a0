r"""Markov chain Monte Carlo for the conditional samplers: SIR initialisation + MALA.

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

:func:`sir_mala` runs both in the whitened coordinates :math:`v` of a Gaussian approximation
:math:`\mathcal N(m, LL^\top)` of the target, :math:`u = m + Lv`: the target of :math:`v` is
:math:`\pi(m + Lv)` (the Jacobian :math:`|\det L|` is a constant), SIR draws candidates from
:math:`\mathcal N(0, w^2 I)` (:math:`w > 1` widens the approximation so that the importance
weights stay bounded where it is too narrow) and MALA's isotropic steps suit the whitened target
when the approximation has the right shape. The approximation only affects efficiency: the
chains target :math:`\pi` whatever :math:`m` and :math:`L`.

Every function works on a batch of independent chains, ``(chains, d)``.

References:
    Roberts & Tweedie, "Exponential convergence of Langevin distributions and their discrete
    approximations", Bernoulli 2(4), 1996.
    Roberts & Rosenthal, "Optimal scaling of discrete approximations to Langevin diffusions",
    JRSS B 60(1), 1998.
    Rubin, "Using the SIR algorithm to simulate posterior distributions", Bayesian
    Statistics 3, 1988.
    Andrieu & Thoms, "A tutorial on adaptive MCMC", Statistics and Computing 18, 2008
    (stochastic-approximation step adaptation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.config import check

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
        if t < burn_in:  # Robbins-Monro on the shared log step size
            rate = log_ratio.clamp(max=0).exp().mean()
            log_eps = log_eps + (rate - TARGET_ACCEPTANCE) / math.sqrt(t + 1)
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
    pool: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``(chains, d)`` draws by sampling-importance-resampling from :math:`g = \mathcal N(loc, scale^2)`.

    Each chain draws ``n_candidates`` from :math:`g` and keeps one with probability
    :math:`\propto \pi(u)/g(u)`. ``log_density`` is called on ``(chains * n_candidates, d)``
    (the candidates of chain ``c`` in rows ``c * n_candidates ...``). The self-normalised
    weights make the draws' law differ from :math:`\pi` by :math:`O(1/M)` for :math:`M`
    candidates, so chains with the same target pool theirs: with ``pool = P``, the chains are
    ``P`` stacked copies of ``chains / P`` targets (chain ``i * chains / P + r`` is copy ``i`` of
    target ``r``, with the same ``loc``, ``scale`` and :math:`\pi`) and each copy draws, with
    replacement, from all :math:`P M` candidates of its target.

    Arguments:
        loc, scale: ``(d,)`` (shared by the chains) or ``(chains, d)``; ``scale > 0``.
    """
    d = loc.shape[-1]
    eps = torch.randn(
        chains, n_candidates, d, generator=generator, device=loc.device, dtype=loc.dtype
    )
    candidates = loc.unsqueeze(-2) + scale.unsqueeze(-2) * eps  # (chains, M, d)
    log_g = -0.5 * eps.square().sum(-1) - scale.log().sum(-1, keepdim=True)  # up to a constant
    with torch.no_grad():
        log_pi = log_density(candidates.reshape(-1, d)).view(chains, n_candidates)
    log_w = torch.nan_to_num(log_pi - log_g, nan=-math.inf)
    targets = chains // pool
    log_w = log_w.view(pool, targets, n_candidates).transpose(0, 1).reshape(targets, -1)
    candidates = candidates.view(pool, targets, n_candidates, d).transpose(0, 1)
    candidates = candidates.reshape(targets, pool * n_candidates, d)  # (targets, P * M, d)
    log_w = torch.where(torch.isinf(log_w).all(1, keepdim=True), torch.zeros_like(log_w), log_w)
    pick = torch.multinomial(
        torch.softmax(log_w, dim=1), pool, replacement=True, generator=generator
    )  # (targets, P)
    chosen = candidates[torch.arange(targets, device=loc.device)[:, None], pick]
    return chosen.transpose(0, 1).reshape(chains, d)


def sir_mala(
    log_density: LogDensity,
    loc: Tensor,
    scale_tril: Tensor | None = None,
    *,
    scale_diag: Tensor | None = None,
    n_candidates: int,
    steps: int,
    burn_in: int,
    widen: float = 1.5,
    step_size: float = 0.1,
    pool: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""SIR then MALA in the whitened coordinates of :math:`\mathcal N(loc, LL^\top)` (module doc).

    Arguments:
        log_density: unnormalised :math:`\log\pi` of ``(chains, d)`` states.
        loc: ``(chains, d)`` means :math:`m` of the Gaussian approximation, one chain per row.
        scale_tril: lower-triangular :math:`L`, ``(d, d)``, shared by the chains.
        scale_diag: or a diagonal :math:`L` per chain, ``(chains, d)`` (an encoder's standard
            deviations: never a dense ``(chains, d, d)``, gigabytes for 784-d latents).
        n_candidates: SIR candidates per chain (from :math:`\mathcal N(0, w^2 I)` in :math:`v`).
        steps, burn_in: MALA transitions, the first ``burn_in`` adapting the step size.
        widen: :math:`w`.
        step_size: initial MALA step size in whitened units.
        pool: the chains are ``pool`` stacked copies of ``chains / pool`` targets (see
            :func:`sir`), which pool their SIR candidates.

    Returns:
        ``(chains, d)`` final states :math:`u` and ``(chains,)`` MALA acceptance rates after
        burn-in.
    """

    check((scale_tril is None) != (scale_diag is None), "sir_mala: give scale_tril or scale_diag")

    def unwhiten(v: Tensor) -> Tensor:
        v = v.view(len(loc), -1, loc.shape[-1])  # row c * S + j: chain c's state j (SIR: S = M)
        scaled = v * scale_diag.unsqueeze(1) if scale_diag is not None else v @ scale_tril.T
        return (loc.unsqueeze(1) + scaled).flatten(0, 1)

    zero = torch.zeros(loc.shape[-1], device=loc.device, dtype=loc.dtype)
    v = sir(
        lambda v: log_density(unwhiten(v)),
        zero,
        torch.full_like(zero, widen),
        len(loc),
        n_candidates=n_candidates,
        pool=pool,
        generator=generator,
    )
    v, acceptance = mala(
        lambda v: log_density(unwhiten(v)),
        v,
        steps=steps,
        burn_in=burn_in,
        step_size=step_size,
        generator=generator,
    )
    return unwhiten(v), acceptance
