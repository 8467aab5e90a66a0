r"""Probabilistic PCA (Tipping & Bishop, 1999): a linear-Gaussian latent variable model.

.. math::
    z \sim \mathcal N(0, I_k), \qquad x \mid z \sim \mathcal N(W z + \mu, \sigma^2 I_D),
    \qquad x \sim \mathcal N(\mu, C), \quad C = W W^\top + \sigma^2 I_D.

The maximum-likelihood fit is closed-form: with the eigenvalues :math:`\lambda_1 \ge \dots`
and eigenvectors :math:`U_k` of the sample covariance,
:math:`\sigma^2 = \frac{1}{D - k}\sum_{j > k} \lambda_j` and
:math:`W = U_k (\Lambda_k - \sigma^2 I)^{1/2}`. The covariance uses the unbiased ``n - 1``
normalisation, as scikit-learn's ``PCA`` does, so ``log_prob`` equals
``PCA(n_components=k).score_samples``. Every quantity is exact: density, posterior
:math:`z \mid x \sim \mathcal N(M^{-1} W^\top (x - \mu), \sigma^2 M^{-1})` with
:math:`M = W^\top W + \sigma^2 I_k`, and Gaussian conditionals for completion.

References:
    Tipping & Bishop, "Probabilistic Principal Component Analysis", JRSS B 61(3), 1999.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import ConfigError
from genlab.models.base import Capabilities, GenerativeModel
from genlab.samplers import (
    GaussianMeasurement,
    Observation,
    complete,
    gaussian_conditional,
    gaussian_posterior,
)

LOG_2PI = math.log(2 * math.pi)
DEFAULT_COMPONENTS = 8


@dataclass(frozen=True)
class PCAConfig:
    """Attributes:
    latent_dim: number of principal components k (1 <= k < D); ``None`` means
        ``min(8, D - 1)``, so the default also works on 2-D data.
    """

    latent_dim: int | None = None

    def __post_init__(self) -> None:
        check(
            self.latent_dim is None or self.latent_dim >= 1,
            f"latent_dim must be >= 1, got {self.latent_dim}",
        )


class PCA(GenerativeModel):
    """Probabilistic PCA with exact density, posterior and conditionals (see module docstring)."""

    family = "pca"
    capabilities = Capabilities(
        sample=True,
        log_prob="exact",
        encode=True,
        decode=True,
        conditional="exact",
        posterior="exact",
    )
    description = "probabilistic PCA"
    task_notes = {
        "representation": "posterior mean",
        "conditional": "Gaussian conditional",
        "posterior": "Gaussian posterior in closed form, for linear f",
    }
    config_class = PCAConfig
    pixel_noise = True
    fit_method = "closed_form"
    budgets = {"smoke": {}, "fast": {}, "full": {}}

    def __init__(self, config: PCAConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        d = info.n_features
        k = self.latent_dim = config.latent_dim or min(DEFAULT_COMPONENTS, d - 1)
        check(k < d, f"pca: latent_dim must be smaller than the {d} data dimensions, got {k}")
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("weight", torch.zeros(d, k, dtype=torch.float64))  # W
        self.register_buffer("noise_variance", torch.ones((), dtype=torch.float64))  # sigma^2

    # ------------------------------------------------------------------ fit

    @torch.no_grad()
    def fit_closed_form(self, x_train: Tensor, generator: torch.Generator) -> None:
        x = x_train.flatten(1).to(torch.float64)
        n, d = x.shape
        k = self.latent_dim
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        eigenvalues = torch.zeros(d, dtype=torch.float64, device=x.device)
        eigenvalues[: len(s)] = s.square() / (n - 1)
        noise = eigenvalues[k:].mean().clamp_min(1e-12)
        self.mean.copy_(mean)
        self.weight.copy_(vt[:k].T * (eigenvalues[:k] - noise).clamp_min(0).sqrt())
        self.noise_variance.copy_(noise)

    # ------------------------------------------------------------------ math

    def covariance(self) -> Tensor:
        """:math:`C = W W^T + \\sigma^2 I`, ``(D, D)`` float64."""
        eye = torch.eye(self.info.n_features, dtype=torch.float64, device=self.weight.device)
        return self.weight @ self.weight.T + self.noise_variance * eye

    def _posterior_precision_factor(self) -> Tensor:
        """:math:`M = W^T W + \\sigma^2 I_k`."""
        k = self.latent_dim
        eye = torch.eye(k, dtype=torch.float64, device=self.weight.device)
        return self.weight.T @ self.weight + self.noise_variance * eye

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        r""":math:`\log \mathcal N(x; \mu, C)`, computed in float64."""
        self.check_input(x, context=context)
        diff = x.flatten(1).to(torch.float64) - self.mean
        chol = torch.linalg.cholesky(self.covariance())
        solved = torch.linalg.solve_triangular(chol, diff.T, upper=False)  # (D, B)
        log_det = 2 * chol.diagonal().log().sum()
        d = self.info.n_features
        return (-0.5 * (d * LOG_2PI + log_det + solved.square().sum(0))).to(x.dtype)

    def posterior(self, x: Tensor) -> torch.distributions.MultivariateNormal:
        r""":math:`p(z \mid x) = \mathcal N(M^{-1} W^T (x - \mu), \sigma^2 M^{-1})`."""
        self.check_input(x)
        m = self._posterior_precision_factor()
        diff = x.flatten(1).to(torch.float64) - self.mean
        loc = torch.linalg.solve(m, self.weight.T @ diff.T).T
        return torch.distributions.MultivariateNormal(
            loc, self.noise_variance * torch.linalg.inv(m)
        )

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """The posterior mean :math:`E[z \\mid x]`."""
        self.check_context(context, len(x))
        return self.posterior(x).mean.to(x.dtype)

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """:math:`W z + \\mu`."""
        self.check_context(context, len(z))
        x = z.to(torch.float64) @ self.weight.T + self.mean
        return x.to(z.dtype).view(-1, *self.info.event_shape)

    def reconstruct(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        r"""Optimal reconstruction from the posterior mean, :math:`W (W^T W)^{-1} M E[z|x] + \mu`.

        This is the orthogonal projection onto the principal subspace (Tipping & Bishop, 1999,
        section 3.2); ``decode(encode(x))`` would shrink towards the mean by :math:`M^{-1}`.
        """
        self.check_input(x, context=context)
        w = self.weight
        diff = x.flatten(1).to(torch.float64) - self.mean
        # least squares: W may have zero columns (components without variance above the noise)
        coords = torch.linalg.lstsq(w, diff.T).solution  # (k, B)
        return (w @ coords).T.add(self.mean).to(x.dtype).view_as(x)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        r""":math:`x = W z + \mu + \sigma \epsilon`."""
        self.check_context(context, n)
        device = self.weight.device
        z = torch.randn(
            n, self.latent_dim, generator=generator, device=device, dtype=torch.float64
        )
        eps = torch.randn(
            n, self.info.n_features, generator=generator, device=device, dtype=torch.float64
        )
        x = z @ self.weight.T + self.mean + self.noise_variance.sqrt() * eps
        return x.float().view(n, *self.info.event_shape)

    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""Exact Gaussian conditioning, :math:`x_u \mid x_o \sim \mathcal N(m, S)` with
        :math:`m = \mu_u + C_{uo} C_{oo}^{-1} (x_o - \mu_o)`,
        :math:`S = C_{uu} - C_{uo} C_{oo}^{-1} C_{ou}`.
        """
        self.check_input(x, context=context)
        cov = self.covariance()

        def fill(rows: Tensor, observed: Tensor, n: int) -> Tensor:
            mean_u, cov_u = gaussian_conditional(self.mean, cov, rows.to(torch.float64), observed)
            chol = torch.linalg.cholesky(cov_u)
            eps = torch.randn(
                (n, *mean_u.shape), generator=generator, device=cov.device, dtype=torch.float64
            )
            return mean_u + eps @ chol.T  # (n, R, U)

        return complete(x, mask, n, fill)

    def posterior_distribution(self, observation: Observation) -> tuple[Tensor, Tensor]:
        """Mean ``(rows, D)`` and covariance ``(D, D)`` of :math:`x \\mid y`, in closed form
        (:func:`~genlab.samplers.gaussian_posterior`) for a linear Gaussian measurement."""
        if not isinstance(observation, GaussianMeasurement) or not observation.operator.linear:
            raise ConfigError(
                "pca: the exact posterior needs a linear measurement with Gaussian noise "
                f"(gaussian_measurement with mask, downsample, blur or projection), not "
                f"{observation.description!r}"
            )
        matrix = observation.operator.matrix().to(self.mean.device)
        y = observation.y.to(self.mean.device, torch.float64)
        return gaussian_posterior(self.mean, self.covariance(), matrix, y, observation.noise_std)

    def sample_posterior(
        self,
        observation: Observation,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""Exact draws of :math:`x \mid y` for :math:`y = Ax + \sigma\varepsilon`: PPCA's
        :math:`x \sim \mathcal N(\mu, C)` makes the posterior Gaussian
        (:meth:`posterior_distribution`)."""
        self.check_context(context, observation.rows)
        mean, cov = self.posterior_distribution(observation)
        values, vectors = torch.linalg.eigh(cov)  # a square root that tolerates a singular S
        root = vectors * values.clamp(min=0).sqrt()
        eps = torch.randn(
            (n, *mean.shape), generator=generator, device=mean.device, dtype=torch.float64
        )
        return (mean + eps @ root.T).float().view(n, len(mean), *self.info.event_shape)

    def conditional_distribution(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``(B, n_unobserved)`` and covariance of the unobserved coordinates (one mask)."""
        observed = torch.as_tensor(mask).bool().flatten()
        flat = x.flatten(1).to(torch.float64)
        return gaussian_conditional(self.mean, self.covariance(), flat, observed)
