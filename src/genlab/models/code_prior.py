r"""The code prior of the Gaussian latent-variable families (VAE, HVAE) and the flow's base
distribution: the standard normal, or a Gaussian mixture fitted to the training codes after
training (the flow's codes are :math:`z_i = f(\tilde x_i)`, its mixture diagonal for many
codes; see :mod:`genlab.models.flow`).

.. math::
    p(x) = \int p_\theta(x \mid z)\, p(z)\, dz, \qquad
    p(z) = \mathcal N(0, I) \quad\text{or}\quad p(z) = \pi(z) = \sum_m w_m \mathcal N(z; \mu_m, \Sigma_m).

With ``prior="mixture"`` the family trains, validates and selects its weights under
:math:`\mathcal N(0, I)` (every component of the unfitted mixture is the standard normal), then
:meth:`MixtureCodePrior.fit_code_prior` fits :math:`\pi` to one draw :math:`z_i \sim q(z \mid x_i)`
per training example, a sample of the aggregate posterior :math:`\frac1N \sum_i q(z \mid x_i)`,
the prior that maximises the ELBO for the trained encoder and decoder
(:class:`~genlab.nn.mixture_prior.GaussianMixturePrior`; the ex-post density estimation of
Ghosh et al., 2020, arXiv:1903.12436, fits the codes of a deterministic encoder). Draws rather
than posterior means: a coordinate the encoder leaves unused (posterior collapse) has every mean
at 0, and a mixture fitted to the means would put a spike there that the posterior's draws, and
so the bound, fall outside of. From then on the model is the one with prior
:math:`\pi`: its samples draw codes from it (:meth:`MixtureCodePrior.draw_codes`) and its bound
and latent samplers weigh codes by :math:`\log \pi(z)` (:meth:`MixtureCodePrior.log_prior`).
A VAE's aggregate posterior fills :math:`\mathcal N(0, I)` only in part; codes drawn where the
decoder saw no data decode to blends, which the mixture avoids (README: 28x28 MNIST).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from genlab.nn.mixture_prior import Covariance, GaussianMixturePrior
from genlab.objectives import log_standard_normal

CodePrior = Literal["normal", "mixture"]
CODE_PRIORS: tuple[str, ...] = get_args(CodePrior)


class MixtureCodePrior:
    """Mixin of a :class:`~genlab.models.GenerativeModel` whose codes have a standard normal
    prior: :meth:`build_code_prior` in ``__init__`` (``prior="mixture"`` or ``"normal"``), and
    :meth:`fit_code_prior` from ``finish_training``."""

    prior: GaussianMixturePrior | None
    latent_dim: int

    def build_code_prior(
        self, prior: CodePrior, components: int, covariance: Covariance = "full"
    ) -> None:
        self.prior = (
            GaussianMixturePrior(components, self.latent_dim, covariance)
            if prior == "mixture"
            else None
        )

    def log_prior(self, z: Tensor) -> Tensor:
        """``(*batch)`` :math:`\\log p(z)` of codes ``(*batch, K)``, differentiable."""
        return log_standard_normal(z) if self.prior is None else self.prior.log_prob(z)

    def draw_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, K)`` codes from the prior."""
        if self.prior is None:
            return super().draw_codes(n, generator)  # type: ignore[misc]
        return self.prior.sample(n, generator)

    @torch.no_grad()
    def fit_code_prior(self, codes: Tensor, generator: torch.Generator) -> None:
        """Fit the mixture (if any) to ``(N, K)`` training codes, seeded from ``generator``."""
        if self.prior is not None:
            self.prior.fit_(codes, generator)
