r"""Markov chain Monte Carlo for the conditional samplers: SIR initialisation + MALA.

Metropolis-adjusted Langevin (Roberts & Tweedie, 1996) targets a density :math:`\pi(u)` known up
to a constant: propose

.. math::
    u' = u + \epsilon \nabla \log \pi(u) + \sqrt{2\epsilon}\, \xi, \qquad \xi \sim \mathcal N(0, I),

and accept with probability :math:`\min\{1, \frac{\pi(u') q(u \mid u')}{\pi(u) q(u' \mid u)}\}`,
:math:`\log q(u' \mid u) = -\lVert u' - u - \epsilon \nabla \log\pi(u) \rVert^2 / (4\epsilon)`.
The accept/reject step makes :math:`\pi` exactly invariant whatever the step size. During burn-in
:math:`\log\epsilon` follows a Robbins-Monro recursion towards the acceptance rate 0.574, optimal
for MALA (Roberts & Rosenthal, 1998); afterwards it is frozen. It starts, per target, from the
median over at least ``STEP_PROBES`` probe states of the largest of
:math:`\epsilon_0, \epsilon_0/2, \dots` whose first proposal from the probe would be accepted
with probability at least 1/2
(:func:`initial_log_step_sizes`, :func:`shared_by_copies`), so that short chains on sharp targets
(a GAN's code given half an image) move from their first steps. The probes are the target's
chains' starts when it has at least ``STEP_PROBES`` of them, else a second SIR's draws
(:func:`sir_mala`), independent of the starts: a step chosen from each chain's own start would
make the chains drift between modes (:func:`shared_by_copies`). Until its first
accepted move, a chain steps with the size searched at its own start instead (shared by the
target's chains): SIR's draws of a GAN's code given half an image differ so much that a probe's
step can be too long to move from the start in a few transitions, and one transition's
dependence on the start is a start's bias, which the chain then forgets, not a drift that grows.

A chain that accepts no move returns its start, whatever the target: a start where
:math:`\log\pi = -\infty` or its gradient is not finite never moves, and the draws are then the
proposals', not the target's. :func:`warn_if_stuck` raises a :class:`~genlab.errors.SamplerWarning`
when more than ``STUCK_FRACTION`` of the chains never moved (a chain at the optimal acceptance
rate stays put for :math:`s` steps with probability :math:`0.426^s`);
:func:`recording_sampler_warnings` collects those warnings as notes for the scorecard, the
command line and the quality scripts.

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
    Hoffman & Gelman, "The No-U-Turn Sampler", JMLR 15, 2014 (algorithm 4: a first step size).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import SamplerWarning

LogDensity = Callable[[Tensor], Tensor]  # (chains, d) -> (chains,)
TARGET_ACCEPTANCE = 0.574
STUCK_FRACTION = 0.25
MAX_HALVINGS = 16
STEP_PROBES = 8  # a target with fewer chains searches its first step size at probes


def warn_if_stuck(sampler: str, moved: Tensor, steps: int, started_finite: Tensor) -> None:
    """Warn when more than ``STUCK_FRACTION`` of the chains accepted no move in ``steps``.

    Arguments:
        sampler: the sampler's name, for the message.
        moved: ``(chains,)`` bool, True where the chain accepted at least one move.
        started_finite: ``(chains,)`` bool, True where the start's log-density was finite.
    """
    stuck = int((~moved).sum())
    if stuck <= STUCK_FRACTION * len(moved):
        return
    outside = int((~started_finite).sum())
    where = (
        f" ({outside} started where the target's log-density or its gradient is not finite)"
        if outside
        else ""
    )
    warnings.warn(
        f"{sampler}: {stuck} of {len(moved)} chains accepted no move in {steps} steps{where}; "
        "their draws depend on their starts alone, not on the target. More steps or candidates "
        "may help; if it persists, the sampler does not suit this model",
        SamplerWarning,
        stacklevel=3,
    )


@contextmanager
def recording_sampler_warnings(stage: str, notes: list[str]) -> Iterator[None]:
    """Run a stage with its :class:`~genlab.errors.SamplerWarning` s appended to ``notes`` as
    ``"stage: message"`` (once each); every other warning goes on as it would have (the
    filters in force decide, the recorded ones are shown after the stage)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplerWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, SamplerWarning):
            note = f"{stage}: {warning.message}"
            if note not in notes:
                notes.append(note)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _value_and_grad(log_density: LogDensity, u: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        value = log_density(u)
        (grad,) = torch.autograd.grad(value.sum(), u)
    return value.detach(), grad.detach()


def _propose(
    log_density: LogDensity,
    u: Tensor,
    value: Tensor,
    grad: Tensor,
    log_eps: Tensor,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One MALA proposal per chain: (proposal, its log-density, its gradient, the log of the
    Metropolis-Hastings ratio, -inf where it is not a number)."""
    eps = log_eps.exp()
    noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    proposal = u + eps * grad + (2 * eps).sqrt() * noise
    value_p, grad_p = _value_and_grad(log_density, proposal)
    forward = -(proposal - u - eps * grad).square().sum(1) / (4 * eps[:, 0])
    backward = -(u - proposal - eps * grad_p).square().sum(1) / (4 * eps[:, 0])
    log_ratio = torch.nan_to_num(value_p + backward - value - forward, nan=-math.inf)
    return proposal, value_p, grad_p, log_ratio


def initial_log_step_sizes(
    log_density: LogDensity,
    u: Tensor,
    value: Tensor,
    grad: Tensor,
    step_size: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``(chains, 1)``: per chain, :math:`\log` of the largest :math:`\epsilon_0 / 2^k`,
    :math:`k \le` ``MAX_HALVINGS``, whose one proposal from ``u`` has
    :math:`\min\{1, \text{ratio}\} \ge 1/2` (Hoffman & Gelman, 2014, algorithm 4, halving
    only: the burn-in raises a step that is too small). One draw per trial; stops when every
    chain has its step."""
    log_eps = torch.full((u.shape[0], 1), math.log(step_size), device=u.device, dtype=u.dtype)
    searching = torch.ones(u.shape[0], device=u.device, dtype=torch.bool)
    for _ in range(MAX_HALVINGS):
        *_, log_ratio = _propose(log_density, u, value, grad, log_eps, generator)
        searching &= log_ratio < math.log(0.5)
        if not bool(searching.any()):
            break
        log_eps = log_eps - math.log(2) * searching[:, None]
    return log_eps


def shared_by_copies(log_eps: Tensor, pool: int, chains: int) -> Tensor:
    r"""``(chains, 1)``: each target's median of the log step sizes found for it, for its chains.

    ``log_eps`` holds ``S = len(log_eps) / chains`` values per chain (row ``c * S + j``), and
    chain ``i * chains / pool + r`` is copy ``i`` of target ``r`` (:func:`sir`'s layout), so a
    target has ``pool * S`` values. A step size chosen from a chain's own state would tie the
    step to where the chain is: each fixed step keeps :math:`\pi` invariant, but their mixture
    over starts does not. Between modes of unequal width, the chains that started in the wide
    mode (long steps) and those in the narrow one (short steps) cross between them at different
    rates, so mass drifts from one mode to the other the longer the chains run (a flow's bimodal
    conditional on moons: KS distance to its exact CDF 0.02 after SIR, 0.035 after 60
    transitions, 0.07-0.085 after 240). Found at probes independent of the chains' starts
    (:func:`sir_mala`) or shared by many copies, the step is a constant of the target, and the
    chains keep :math:`\pi`.
    """
    targets = chains // pool
    per_chain = len(log_eps) // chains
    values = log_eps.view(pool, targets, per_chain).transpose(0, 1).reshape(targets, -1)
    return values.median(1).values.repeat(pool).unsqueeze(1)


def mala(
    log_density: LogDensity,
    u: Tensor,
    *,
    steps: int,
    burn_in: int,
    step_size: float = 0.01,
    pool: int = 1,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Run MALA chains from ``u``; returns (final states, acceptance rate after burn-in per chain).

    With ``burn_in > 0`` the step sizes start at :func:`initial_log_step_sizes`, found at
    ``probes`` (or, without them, at the chains' starts) and shared by each target's chains
    (:func:`shared_by_copies`), and adapt; a chain that has not moved yet steps with the size
    found at the starts (module doc). Warns (:func:`warn_if_stuck`) when more than a quarter
    of the chains never moved.

    Arguments:
        log_density: unnormalised log-density of a batch of states.
        u: ``(chains, d)`` initial states.
        steps: total transitions (the last state of each chain is returned).
        burn_in: transitions during which step sizes adapt (must be < steps).
        step_size: initial :math:`\\epsilon` (the largest the search tries).
        pool: the chains are ``pool`` stacked copies of ``chains / pool`` targets (as in
            :func:`sir`); the copies of a target share its step size.
        probes: ``(chains * S, d)``, row ``c * S + j`` a state of chain ``c``'s target drawn
            independently of ``u`` (a second SIR): the step is searched there, so that it does
            not depend on where the chains start (:func:`shared_by_copies`).
    """
    value, grad = _value_and_grad(log_density, u)
    log_eps = torch.full((u.shape[0], 1), math.log(step_size), device=u.device, dtype=u.dtype)
    until_moved = log_eps
    if burn_in > 0:
        found = initial_log_step_sizes(log_density, u, value, grad, step_size, generator)
        until_moved = log_eps = shared_by_copies(found, pool, len(u))
        if probes is not None:
            value_at, grad_at = _value_and_grad(log_density, probes)
            found = initial_log_step_sizes(
                log_density, probes, value_at, grad_at, step_size, generator
            )
            log_eps = shared_by_copies(found, pool, len(u))
    accepted = torch.zeros(u.shape[0], device=u.device, dtype=u.dtype)
    started_finite = torch.isfinite(value) & torch.isfinite(grad).all(1)
    moved = torch.zeros(u.shape[0], device=u.device, dtype=torch.bool)
    for t in range(steps):
        chain_log_eps = torch.where(moved[:, None], log_eps, until_moved)
        proposal, value_p, grad_p, log_ratio = _propose(
            log_density, u, value, grad, chain_log_eps, generator
        )
        uniform = torch.rand(u.shape[0], generator=generator, device=u.device, dtype=u.dtype)
        accept = uniform.log() < log_ratio
        u = torch.where(accept[:, None], proposal, u)
        value = torch.where(accept, value_p, value)
        grad = torch.where(accept[:, None], grad_p, grad)
        moved |= accept
        if t < burn_in:  # Robbins-Monro on the shared log step size
            rate = log_ratio.clamp(max=0).exp().mean()
            shift = (rate - TARGET_ACCEPTANCE) / math.sqrt(t + 1)
            log_eps, until_moved = log_eps + shift, until_moved + shift
        else:
            accepted += accept.to(u.dtype)
    warn_if_stuck("MALA", moved, steps, started_finite)
    return u.detach(), accepted / max(steps - burn_in, 1)


def sir(
    log_density: LogDensity,
    loc: Tensor,
    scale: Tensor,
    chains: int,
    *,
    n_candidates: int,
    pool: int = 1,
    draws: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``(chains * draws, d)`` draws by sampling-importance-resampling from
    :math:`g = \mathcal N(loc, scale^2)`.

    Each chain draws ``n_candidates`` from :math:`g` and keeps one with probability
    :math:`\propto \pi(u)/g(u)`. ``log_density`` is called on ``(chains * n_candidates, d)``
    (the candidates of chain ``c`` in rows ``c * n_candidates ...``). The self-normalised
    weights make the draws' law differ from :math:`\pi` by :math:`O(1/M)` for :math:`M`
    candidates, so chains with the same target pool theirs: with ``pool = P``, the chains are
    ``P`` stacked copies of ``chains / P`` targets (chain ``i * chains / P + r`` is copy ``i`` of
    target ``r``, with the same ``loc``, ``scale`` and :math:`\pi`) and each copy draws, with
    replacement, from all :math:`P M` candidates of its target. With ``draws = S``, each chain
    draws ``S`` times (rows ``c * S ... c * S + S - 1``).

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
        torch.softmax(log_w, dim=1), pool * draws, replacement=True, generator=generator
    )  # (targets, P * S)
    chosen = candidates[torch.arange(targets, device=loc.device)[:, None], pick]
    return chosen.view(targets, pool, draws, d).transpose(0, 1).reshape(chains * draws, d)


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
            :func:`sir`), which pool their SIR candidates and share MALA's step size; with
            fewer than ``STEP_PROBES`` copies, the step is searched at a second SIR's draws
            (module doc: for ``pool = 1`` it costs a second SIR, 40% of a 2-D flow's default
            completion).

    Returns:
        ``(chains, d)`` final states :math:`u` and ``(chains,)`` MALA acceptance rates after
        burn-in.
    """

    check((scale_tril is None) != (scale_diag is None), "sir_mala: give scale_tril or scale_diag")

    def unwhiten(v: Tensor) -> Tensor:
        v = v.view(len(loc), -1, loc.shape[-1])  # row c * S + j: chain c's state j (SIR: S = M)
        scaled = v * scale_diag.unsqueeze(1) if scale_diag is not None else v @ scale_tril.T
        return (loc.unsqueeze(1) + scaled).flatten(0, 1)

    def whitened(v: Tensor) -> Tensor:
        return log_density(unwhiten(v))

    zero = torch.zeros(loc.shape[-1], device=loc.device, dtype=loc.dtype)

    def resample(draws: int) -> Tensor:
        return sir(
            whitened,
            zero,
            torch.full_like(zero, widen),
            len(loc),
            n_candidates=n_candidates,
            pool=pool,
            draws=draws,
            generator=generator,
        )

    v = resample(1)
    probes = None
    if burn_in > 0 and pool < STEP_PROBES:  # too few starts: search the step apart from them
        probes = resample(-(-STEP_PROBES // pool))
    v, acceptance = mala(
        whitened,
        v,
        steps=steps,
        burn_in=burn_in,
        step_size=step_size,
        pool=pool,
        probes=probes,
        generator=generator,
    )
    return unwhiten(v), acceptance
