r"""Completion with an exact density: MCMC on the unobserved coordinates themselves.

A family with a normalised density (a flow) needs no code: :math:`p(x_u \mid x_o) \propto
p(x_o, x_u)`, so chains on :math:`x_u` with the joint density and an accept/reject step target
the conditional exactly. They run in the coordinates :math:`h = t(x)` of an elementwise
bijection :math:`t` that maps the support onto the real line (for the flow its logit followed
by :math:`\operatorname{atanh}(\cdot / c)`, :math:`c` the edge of the logit's range; or a
standardisation):
since :math:`t` is elementwise its Jacobian factorises, the observed factor is a constant, and
the chains need the density of :math:`h` only up to it, with no proposal wasted on a boundary.

Each chain

1. starts by sampling-importance-resampling: ``n_candidates`` draws from a widened Gaussian
   :math:`\mathcal N(m, w^2 S)`, weighted by the exact density, where :math:`(m, S)` is the
   Gaussian conditional of :math:`h_u` given :math:`h_o` under a Gaussian approximation of
   :math:`h` (:func:`~genlab.samplers.gaussian.gaussian_conditional`): it follows
   :math:`x_o` and gives SIR the weights of separated modes in low dimension;
2. runs ``steps`` MALA transitions in the coordinates whitened by :math:`S` (the first half adapt
   the step size) and returns its last state (:func:`~genlab.samplers.mcmc.sir_mala`).

The Gaussian only affects efficiency: the chains target the model's conditional whatever it is.

A family that models :math:`p(x \mid y)` given side information (a conditional flow) hands
:func:`complete_from_density` a factory of the pieces for each chain's context, so that chain
:math:`i` targets :math:`p(x_u \mid x_o, y_i)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError
from genlab.samplers.completion import complete
from genlab.samplers.gaussian import gaussian_conditional
from genlab.samplers.mcmc import sir_mala


@dataclass(frozen=True)
class ExplicitDensity:
    r"""What :func:`complete_from_density` needs of a density family, on flat ``(N, D)`` data.

    Attributes:
        family: the family's name, for error messages.
        transform: data ``x`` -> chain coordinates ``h = t(x)``, elementwise and bijective.
        inverse: ``h`` -> ``x``.
        log_density: ``h`` ``(N, D)`` -> ``(N,)`` :math:`\log p(h)` up to a constant,
            ``-inf`` where ``x`` leaves the support. ``N`` is a multiple of the chains and the
            rows of a chain are adjacent (pieces built for a context read each chain's row).
        in_support: ``h`` -> elementwise bool, whether the value maps into the support.
        mean, cov: ``(D,)``, ``(D, D)`` a Gaussian approximation of :math:`h` (float64).
    """

    family: str
    transform: Callable[[Tensor], Tensor]
    inverse: Callable[[Tensor], Tensor]
    log_density: Callable[[Tensor], Tensor]
    in_support: Callable[[Tensor], Tensor]
    mean: Tensor
    cov: Tensor


def complete_from_density(
    model_for: Callable[[Tensor | None], ExplicitDensity],
    x: Tensor,
    mask: Tensor,
    n: int,
    *,
    n_candidates: int,
    steps: int,
    generator: torch.Generator | None = None,
    context: Tensor | None = None,
) -> Tensor:
    """``(n, batch, *event_shape)`` draws of the unobserved coordinates by SIR + MALA (module doc).

    Arguments:
        model_for: the family's pieces, given each chain's context (``None`` without one).
        x: ``(batch, *event_shape)``; only observed coordinates are read.
        mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
        n: completions per example (independent chains).
        n_candidates: SIR candidates per chain.
        steps: MALA transitions per chain; the first half adapt the step size.
        context: ``(batch, ...)`` side information of a family that models p(x | y).
    """
    check(n_candidates >= 1, f"n_candidates must be >= 1, got {n_candidates}")
    check(steps >= 1, f"steps must be >= 1, got {steps}")

    def fill(rows: Tensor, observed: Tensor, n: int, context: Tensor | None = None) -> Tensor:
        # chain i * R + r completes row r, with its context
        repeated = None if context is None else context.repeat(n, *[1] * (context.dim() - 1))
        model = model_for(repeated)
        with torch.no_grad():
            h_rows = model.transform(rows)  # (R, D)
        if not bool(model.in_support(h_rows[:, observed]).all()):
            raise DataError(
                f"{model.family}: observed values are not finite or lie outside the model's "
                "support (for discrete data, the dequantised value range); the conditional is "
                "undefined there"
            )
        mean_u, cov_u = gaussian_conditional(model.mean, model.cov, h_rows.double(), observed)
        chol = torch.linalg.cholesky(cov_u).to(h_rows.dtype)
        free = (~observed).nonzero().squeeze(1)
        fixed = h_rows.repeat(n, 1)  # (n * R, D), chain i * R + r completes row r

        def log_density(h_free: Tensor) -> Tensor:
            copies = len(h_free) // len(fixed)  # SIR scores several candidates per chain
            h = fixed.repeat_interleave(copies, 0).index_copy(1, free, h_free)
            return model.log_density(h)

        h_free, _ = sir_mala(
            log_density,
            mean_u.to(h_rows.dtype).repeat(n, 1),
            chol,
            n_candidates=n_candidates,
            steps=steps,
            burn_in=steps // 2,
            pool=n,  # the n chains of an example share its SIR candidates
            generator=generator,
        )
        with torch.no_grad():
            completed = model.inverse(fixed.index_copy(1, free, h_free))
        return completed[:, free].view(n, len(rows), len(free))

    return complete(x, mask, n, fill, context=context)
