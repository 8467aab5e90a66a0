r"""Completion by the latent code: families :math:`z \sim \mathcal N(0, I)`, :math:`x \mid z \sim \prod_d p(x_d \mid z)`.

A VAE, and a GAN or BiGAN under an observation-noise model, are such families. When the
likelihood factorises over coordinates,

.. math::
    p(x_u \mid x_o) = \int p(x_u \mid z)\, p(z \mid x_o)\, dz, \qquad
    p(z \mid x_o) \propto \mathcal N(z; 0, I) \prod_{d \in o} p(x_d \mid z),

so drawing :math:`z \sim p(z \mid x_o)` by MCMC and then :math:`x_u \sim p(x_u \mid z)` is exact
at stationarity; the unobserved coordinates never enter the chain (:func:`latent_posterior`).
Metropolis-within-Gibbs (:func:`metropolis_within_gibbs`) instead alternates the code and the
completion. A family hands both a :class:`LatentVariableModel`, the few pieces they need, and
:func:`complete_from_latent` does the rest.

References:
    Mattei & Frellsen, "Leveraging the Exact Likelihood of Deep Latent Variable Models",
    NeurIPS 2018, arXiv:1802.04826 (Metropolis-within-Gibbs completion).
    Mattei & Frellsen, "MIWAE: Deep Generative Modelling and Imputation of Incomplete Data
    Sets", ICML 2019, arXiv:1812.02633 (importance-resampled imputation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from genlab.config import check
from genlab.objectives import log_standard_normal
from genlab.samplers.completion import complete
from genlab.samplers.mcmc import sir_mala, warn_if_stuck

LatentMethod = Literal["mala", "gibbs"]
LATENT_METHODS: tuple[str, ...] = get_args(LatentMethod)


@dataclass(frozen=True)
class LatentVariableModel:
    r"""The pieces of :math:`p(z)\, p(x \mid z)` the latent samplers need (:math:`p(z) =
    \mathcal N(0, I_K)` unless ``log_prior`` says otherwise).

    Data is flat, ``(..., D)``, in data units. ``decode`` turns codes into the parameters of
    :math:`p(x \mid z)` (any tensor whose leading dimensions are the codes'); the other pieces
    only read what ``decode`` returns.

    Attributes:
        start: ``(D,)`` values the unobserved coordinates take before anything is drawn (where
            the proposal is computed, and Metropolis-within-Gibbs's first completion).
        decode: codes ``(*batch, K)`` -> parameters ``(*batch, ...)`` of :math:`p(x \mid z)`.
        coordinate_log_prob: ``(params (*batch, ...), x (*batch, D))`` -> ``(*batch, D)``
            :math:`\log p(x_d \mid z)` of each coordinate (broadcasting over the batch).
        draw: ``(params, generator)`` -> ``(*batch, D)`` a draw of :math:`x \sim p(x \mid z)`
            (a deterministic decoder returns its output).
        proposal: ``x (B, D)`` -> mean and scale ``(B, K)`` of a Gaussian near
            :math:`p(z \mid x)` (an encoder, or the prior): it shapes the MCMC proposals and is
            Metropolis-within-Gibbs's independent proposal; it never changes the target. Its
            rows are the first ``B`` chains (pieces built for a context read its first rows).
        check_observed: ``(x (B, D), observed (D,))`` raises a :class:`~genlab.errors.DataError`
            when observed values lie outside the likelihood's support; ``None``: no check.
        log_prior: codes ``(*batch, K)`` -> ``(*batch)`` :math:`\log p(z)`, differentiable.
    """

    start: Tensor
    decode: Callable[[Tensor], Tensor]
    coordinate_log_prob: Callable[[Tensor, Tensor], Tensor]
    draw: Callable[[Tensor, torch.Generator | None], Tensor]
    proposal: Callable[[Tensor], tuple[Tensor, Tensor]]
    check_observed: Callable[[Tensor, Tensor], None] | None = None
    log_prior: Callable[[Tensor], Tensor] = log_standard_normal


def latent_posterior(
    log_likelihood: Callable[[Tensor], Tensor],
    loc: Tensor,
    scale: Tensor,
    *,
    n_candidates: int,
    steps: int,
    burn_in: int,
    pool: int = 1,
    generator: torch.Generator | None = None,
    log_prior: Callable[[Tensor], Tensor] = log_standard_normal,
) -> tuple[Tensor, Tensor]:
    r"""Draws of :math:`z \sim p(z \mid x_o) \propto p(z)\, p(x_o \mid z)`, one per chain
    (:math:`\log p(z)` = ``log_prior``, by default :math:`\mathcal N(z; 0, I)`).

    SIR from the widened Gaussian :math:`\mathcal N(loc, \mathrm{diag}(scale)^2)` (an encoder's
    :math:`q(z \mid x)`: the multiple imputation of Mattei & Frellsen, 2019; or the prior), then
    MALA whitened by it (:func:`genlab.samplers.mcmc.sir_mala`). The Gaussian only shapes the
    proposals.

    Arguments:
        log_likelihood: :math:`\log p(x_o \mid z)` of each chain's observed values,
            ``(chains, S, K)`` codes -> ``(chains, S)`` (``S`` codes per chain at a time).
        loc, scale: ``(chains, K)`` the Gaussian that shapes the proposals.
        n_candidates, steps, burn_in, pool: see :func:`~genlab.samplers.mcmc.sir_mala`.

    Returns:
        ``(chains, K)`` codes and ``(chains,)`` MALA acceptance rates.
    """
    chains, k = loc.shape

    def log_density(z: Tensor) -> Tensor:
        z = z.view(chains, -1, k)  # (chains, S, K): rows of the same chain are adjacent
        return (log_likelihood(z) + log_prior(z)).reshape(-1)

    return sir_mala(
        log_density,
        loc,
        scale_diag=scale,
        n_candidates=n_candidates,
        steps=steps,
        burn_in=burn_in,
        pool=pool,
        generator=generator,
    )


def _draw_gaussian(loc: Tensor, scale: Tensor, generator: torch.Generator | None) -> Tensor:
    eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    return loc + scale * eps


def _draw_unobserved(
    model: LatentVariableModel,
    x: Tensor,
    free: Tensor,
    params: Tensor,
    generator: torch.Generator | None,
) -> Tensor:
    r"""``x`` with its ``free`` coordinates drawn from :math:`p(x_u \mid z)`, ``params`` of ``z``."""
    return x.index_copy(1, free, model.draw(params, generator)[:, free])


@torch.no_grad()
def metropolis_within_gibbs(
    model: LatentVariableModel,
    x: Tensor,
    free: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``steps`` sweeps of Metropolis-within-Gibbs on :math:`(z, x_u)` from ``x`` ``(chains, D)``.

    Each sweep (Mattei & Frellsen, 2018, algorithm 1) makes an independent Metropolis-Hastings
    step on :math:`z` with the proposal :math:`q(z \mid x) = \mathcal N(m(x), s(x)^2)` at the
    current completion, accepted with probability

    .. math::
        \min\Big\{1, \frac{p(x_o, x_u \mid z')\, p(z')\, q(z \mid x_o, x_u)}
        {p(x_o, x_u \mid z)\, p(z)\, q(z' \mid x_o, x_u)}\Big\},

    then redraws :math:`x_u \sim p(x_u \mid z)`. Exact at stationarity whatever :math:`q`.
    Warns (:func:`~genlab.samplers.mcmc.warn_if_stuck`) when more than a quarter of the chains
    never moved.

    Arguments:
        x: ``(chains, D)`` starting completions; only the ``free`` coordinates change.
        free: ``(U,)`` indices of the unobserved coordinates.
    """
    z = _draw_gaussian(*model.proposal(x), generator)
    params = model.decode(z)
    x = _draw_unobserved(model, x, free, params, generator)
    start = model.coordinate_log_prob(params, x).sum(-1) + model.log_prior(z)
    moved = torch.zeros(len(x), device=x.device, dtype=torch.bool)
    for _ in range(steps):
        loc, scale = model.proposal(x)
        q = torch.distributions.Normal(loc, scale)
        proposal = _draw_gaussian(loc, scale, generator)
        params_p = model.decode(proposal)
        log_ratio = (
            model.coordinate_log_prob(params_p, x).sum(-1)
            + model.log_prior(proposal)
            - q.log_prob(proposal).sum(-1)
            - model.coordinate_log_prob(params, x).sum(-1)
            - model.log_prior(z)
            + q.log_prob(z).sum(-1)
        )
        u = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
        accept = u.log() < torch.nan_to_num(log_ratio, nan=-math.inf)
        moved |= accept
        z = torch.where(accept[:, None], proposal, z)
        params = torch.where(accept.view(-1, *([1] * (params.dim() - 1))), params_p, params)
        x = _draw_unobserved(model, x, free, params, generator)
    warn_if_stuck("Metropolis-within-Gibbs", moved, steps, torch.isfinite(start))
    return x


def complete_from_latent(
    model_for: Callable[[Tensor | None], LatentVariableModel],
    x: Tensor,
    mask: Tensor,
    n: int,
    *,
    method: LatentMethod = "mala",
    steps: int,
    n_candidates: int,
    generator: torch.Generator | None = None,
    context: Tensor | None = None,
) -> Tensor:
    r"""``(n, batch, *event_shape)`` draws of :math:`x_u \sim p(x_u \mid x_o)`, ``n`` chains each.

    ``"mala"``: :math:`z \sim p(z \mid x_o)` by SIR from ``model.proposal`` at the example (its
    unobserved part at ``model.start``) and ``steps`` MALA transitions whitened by it, the first
    half adapting the step size (:func:`latent_posterior`; the ``n`` chains of an example pool
    their SIR candidates), then :math:`x_u \sim p(x_u \mid z)`. ``"gibbs"``:
    :func:`metropolis_within_gibbs` for ``steps`` sweeps from ``model.start``.

    Arguments:
        model_for: the family's pieces, given each chain's context (``None`` without one).
        x: ``(batch, *event_shape)``; only observed coordinates are read.
        mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
        n: completions per example (independent chains).
        method: ``"mala"`` or ``"gibbs"``.
        steps: MALA transitions or Metropolis-within-Gibbs sweeps per chain.
        n_candidates: SIR candidates per chain (``"mala"``).
        context: ``(batch, ...)`` side information of a family that models p(x | y).
    """
    check(method in LATENT_METHODS, f"sampler must be one of {LATENT_METHODS}, got {method!r}")
    check(steps >= 1, f"steps must be >= 1, got {steps}")
    check(n_candidates >= 1, f"n_candidates must be >= 1, got {n_candidates}")

    def fill(rows: Tensor, observed: Tensor, n: int, context: Tensor | None = None) -> Tensor:
        # chain i * R + r completes row r, with its context
        repeated = None if context is None else context.repeat(n, *[1] * (context.dim() - 1))
        model = model_for(repeated)
        start = torch.where(observed, rows, model.start.to(rows.dtype))  # (R, D)
        if model.check_observed is not None:
            model.check_observed(start, observed)
        chains = start.repeat(n, 1)  # (n * R, D)
        free = (~observed).nonzero().squeeze(1)
        if method == "gibbs":
            chains = metropolis_within_gibbs(model, chains, free, steps, generator)
        else:

            def log_likelihood(z: Tensor) -> Tensor:  # (chains, S, K) -> (chains, S)
                log_p = model.coordinate_log_prob(model.decode(z), chains.unsqueeze(1))
                return log_p[..., observed].sum(-1)

            with torch.no_grad():
                loc, scale = model.proposal(start)
            z, _ = latent_posterior(
                log_likelihood,
                loc.repeat(n, 1),
                scale.repeat(n, 1),
                n_candidates=n_candidates,
                steps=steps,
                burn_in=steps // 2,
                pool=n,  # the n chains of an example share its SIR candidates
                generator=generator,
                log_prior=model.log_prior,
            )
            with torch.no_grad():
                chains = _draw_unobserved(model, chains, free, model.decode(z), generator)
        return chains[:, free].view(n, len(rows), len(free))

    return complete(x, mask, n, fill, context=context)
