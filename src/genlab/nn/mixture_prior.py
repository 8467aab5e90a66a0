r"""A Gaussian-mixture prior over codes, fitted to a trained model's codes after training.

.. math::
    \pi(z) = \sum_{m=1}^M w_m\, \mathcal N(z;\ \mu_m,\ L_m L_m^\top), \qquad
    \log \mathcal N(z; \mu, L L^\top) = -\tfrac12 \lVert L^{-1}(z - \mu) \rVert^2
    - \sum_j \log L_{jj} - \tfrac K2 \log 2\pi.

Ex-post density estimation (Ghosh et al., 2020, "From Variational to Deterministic
Autoencoders", arXiv:1903.12436): a second, cheap stage fits the distribution of the codes a
trained encoder gives the training data, so that sampling draws codes where the decoder was
trained instead of from :math:`\mathcal N(0, I)`, whose mass an autoencoder's codes (or a
VAE's aggregate posterior) fill only in part. Every component starts as
:math:`\mathcal N(0, I)` (equal weights), so before :meth:`GaussianMixturePrior.fit_` the prior is the standard
normal exactly. The fit is scikit-learn's EM (full covariances, or diagonal ones,
:math:`L_m = \operatorname{diag}(\sigma_m)`, for codes of hundreds of dimensions such as a
flow's); with fewer codes than components, one component per code and the rest weigh 0.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

Covariance = Literal["full", "diag"]
COVARIANCES: tuple[str, ...] = get_args(Covariance)


class GaussianMixturePrior(nn.Module):
    """``components`` Gaussians over ``dim``-dimensional codes (see module), with ``"full"`` or
    ``"diag"`` covariances.

    Buffers: ``weights`` ``(M,)``, ``means`` ``(M, K)``, and ``scale_tril`` ``(M, K, K)`` (the
    Cholesky factors of full covariances) or ``scales`` ``(M, K)`` (the standard deviations
    of diagonal ones).

    Example:
        >>> prior = GaussianMixturePrior(3, 2)
        >>> torch.allclose(prior.log_prob(torch.zeros(1, 2)), torch.tensor([-math.log(2 * math.pi)]))
        True
    """

    def __init__(self, components: int, dim: int, covariance: Covariance = "full") -> None:
        super().__init__()
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        self.covariance = covariance
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, dim))
        if covariance == "full":
            self.register_buffer("scale_tril", torch.eye(dim).repeat(components, 1, 1))
        else:
            self.register_buffer("scales", torch.ones(components, dim))

    @torch.no_grad()
    def fit_(
        self, codes: Tensor, generator: torch.Generator | None = None, reg_covar: float = 1e-5
    ) -> None:
        """Fit the mixture to ``(N, K)`` codes by EM (scikit-learn, its initialisation seeded
        from ``generator``, ``reg_covar`` added to each variance)."""
        from sklearn.mixture import GaussianMixture

        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        m = min(len(self.weights), len(codes))
        gmm = GaussianMixture(
            m, covariance_type=self.covariance, reg_covar=reg_covar, random_state=seed
        )
        gmm.fit(codes.detach().double().cpu().numpy())
        device, dtype = self.means.device, self.means.dtype
        self.weights.zero_()[:m] = torch.from_numpy(gmm.weights_).to(device, dtype)
        self.means.zero_()[:m] = torch.from_numpy(gmm.means_).to(device, dtype)
        covariances = torch.from_numpy(gmm.covariances_)
        if self.covariance == "full":
            self.scale_tril[:m] = torch.linalg.cholesky(covariances).to(device, dtype)
        else:
            self.scales[:m] = covariances.sqrt().to(device, dtype)

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``(n, K)`` codes: a component by its weight, then :math:`\\mu_m + T L_m \\epsilon`
        (``temperature`` :math:`T`; 1: draws from :math:`\\pi`)."""
        device = self.means.device
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        shape = (n, self.means.shape[1])
        eps = torch.randn(shape, generator=generator, device=device, dtype=self.means.dtype)
        if self.covariance == "full":
            eps = (self.scale_tril[component] @ eps.unsqueeze(-1)).squeeze(-1)
        else:
            eps = self.scales[component] * eps
        return self.means[component] + temperature * eps

    def log_prob(self, z: Tensor) -> Tensor:
        r"""``(*batch)`` :math:`\log \pi(z)` of codes ``(*batch, K)``, differentiable in ``z``."""
        k = z.shape[-1]
        diff = z.reshape(-1, 1, k) - self.means  # (N, M, K)
        if self.covariance == "full":
            white = torch.linalg.solve_triangular(
                self.scale_tril, diff.transpose(0, 1).transpose(1, 2), upper=False
            ).permute(2, 0, 1)  # (N, M, K): L_m^{-1} (z - mu_m)
            log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (M,)
        else:
            white = diff / self.scales
            log_det = self.scales.log().sum(-1)
        log_normal = -0.5 * white.square().sum(-1) - log_det - 0.5 * k * math.log(2 * math.pi)
        log_mixture = torch.logsumexp(log_normal + self.weights.log(), dim=1)  # (N,)
        return log_mixture.reshape(z.shape[:-1])
