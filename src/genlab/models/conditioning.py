r"""What every family's ``sample_conditional`` shares: masks, observed values kept, Gaussian algebra.

A family completes :math:`x = (x_o, x_u)` by drawing :math:`x_u \sim p(x_u \mid x_o)`. The mask
may differ between examples; :func:`complete` groups the examples by mask pattern, asks the
family for ``n`` draws of the unobserved coordinates of each group (a :data:`Fill`), and writes
them next to the observed values, which are copied from ``x`` unchanged. The family's sampler
therefore only ever sees one pattern, so its unobserved coordinates form a fixed-size vector.

:func:`gaussian_conditional` is the closed form behind probabilistic PCA's exact conditionals
and behind the Gaussian approximations that tune the MCMC proposals of other families:

.. math::
    x_u \mid x_o \sim \mathcal N\big(\mu_u + C_{uo} C_{oo}^{-1} (x_o - \mu_o),\;
    C_{uu} - C_{uo} C_{oo}^{-1} C_{ou}\big).

:func:`latent_posterior` serves latent-variable models :math:`z \sim \mathcal N(0, I)`,
:math:`x \mid z \sim \prod_d p(x_d \mid z)` (VAE; a GAN or BiGAN under an observation-noise
model): when the likelihood factorises over coordinates,

.. math::
    p(x_u \mid x_o) = \int p(x_u \mid z)\, p(z \mid x_o)\, dz, \qquad
    p(z \mid x_o) \propto \mathcal N(z; 0, I) \prod_{d \in o} p(x_d \mid z),

so drawing :math:`z \sim p(z \mid x_o)` by MCMC and then :math:`x_u \sim p(x_u \mid z)` is
exact at stationarity; the unobserved coordinates never enter the chain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.config import check
from genlab.mcmc import sir_mala
from genlab.models.base import broadcast_mask
from genlab.objectives import log_standard_normal

# (rows (R, D) data of R examples sharing a pattern, observed (D,) bool, n) -> (n, R, U) draws of
# the U unobserved coordinates, in the order of ``(~observed).nonzero()``
Fill = Callable[[Tensor, Tensor, int], Tensor]


def complete(x: Tensor, mask: Tensor, n: int, fill: Fill) -> Tensor:
    """``(n, batch, *event_shape)`` completions of ``x``: observed values copied, the rest filled.

    Arguments:
        x: ``(batch, *event_shape)`` data; only the observed coordinates are read.
        mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
        n: completions per example.
        fill: draws the unobserved coordinates of the examples that share a mask pattern.
    """
    check(n >= 1, f"sample_conditional: n (completions per example) must be >= 1, got {n}")
    observed = broadcast_mask(mask, x).flatten(1)  # (B, D)
    flat = x.flatten(1)
    out = flat.unsqueeze(0).repeat(n, 1, 1)  # (n, B, D)
    patterns, which = torch.unique(observed, dim=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        if bool(pattern.all()):
            continue
        rows = (which == p).nonzero().squeeze(1)
        values = fill(flat[rows], pattern, n)  # (n, R, U)
        out[:, rows[:, None], (~pattern).nonzero().squeeze(1)] = values.to(out.dtype)
    return out.view(n, *x.shape)


def gaussian_conditional(
    mean: Tensor, cov: Tensor, values: Tensor, observed: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Mean ``(R, U)`` and covariance ``(U, U)`` of :math:`x_u \mid x_o` under :math:`\mathcal N(\mu, C)`.

    Arguments:
        mean: ``(D,)`` :math:`\mu`.
        cov: ``(D, D)`` :math:`C`, positive definite.
        values: ``(R, D)`` examples; only their observed coordinates are read.
        observed: ``(D,)`` bool, True marks :math:`o`.
    """
    o, u = observed, ~observed
    if not bool(o.any()):
        return mean[u].expand(values.shape[0], -1), cov[u][:, u]
    c_oo, c_uo, c_uu = cov[o][:, o], cov[u][:, o], cov[u][:, u]
    gain = torch.linalg.solve(c_oo, c_uo.T).T  # C_uo C_oo^{-1}, (U, O)
    mean_u = mean[u] + (values[:, o] - mean[o]) @ gain.T
    return mean_u, c_uu - gain @ c_uo.T


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
) -> tuple[Tensor, Tensor]:
    r"""Draws of :math:`z \sim p(z \mid x_o) \propto \mathcal N(z; 0, I)\, p(x_o \mid z)`, one per chain.

    SIR from the widened Gaussian :math:`\mathcal N(loc, \mathrm{diag}(scale)^2)` (an encoder's
    :math:`q(z \mid x)`: the multiple imputation of Mattei & Frellsen, 2019; or the prior), then
    MALA whitened by it (:func:`genlab.mcmc.sir_mala`). The Gaussian only shapes the proposals.

    Arguments:
        log_likelihood: :math:`\log p(x_o \mid z)` of each chain's observed values,
            ``(chains, S, K)`` codes -> ``(chains, S)`` (``S`` codes per chain at a time).
        loc, scale: ``(chains, K)`` the Gaussian that shapes the proposals.
        n_candidates, steps, burn_in, pool: see :func:`~genlab.mcmc.sir_mala`.

    Returns:
        ``(chains, K)`` codes and ``(chains,)`` MALA acceptance rates.

    References:
        Mattei & Frellsen, "MIWAE: Deep Generative Modelling and Imputation of Incomplete Data
        Sets", ICML 2019, arXiv:1812.02633.
    """
    chains, k = loc.shape

    def log_density(z: Tensor) -> Tensor:
        z = z.view(chains, -1, k)  # (chains, S, K): rows of the same chain are adjacent
        return (log_likelihood(z) + log_standard_normal(z)).reshape(-1)

    return sir_mala(
        log_density,
        loc,
        torch.diag_embed(scale),
        n_candidates=n_candidates,
        steps=steps,
        burn_in=burn_in,
        pool=pool,
        generator=generator,
    )
