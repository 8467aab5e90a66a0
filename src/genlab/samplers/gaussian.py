r"""The Gaussian conditional: exact for probabilistic PCA, a proposal shape for everything else.

.. math::
    x_u \mid x_o \sim \mathcal N\big(\mu_u + C_{uo} C_{oo}^{-1} (x_o - \mu_o),\;
    C_{uu} - C_{uo} C_{oo}^{-1} C_{ou}\big).
"""

from __future__ import annotations

import torch
from torch import Tensor


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


def gaussian_posterior(
    mean: Tensor, cov: Tensor, matrix: Tensor, y: Tensor, noise_std: float
) -> tuple[Tensor, Tensor]:
    r"""Mean ``(B, D)`` and covariance ``(D, D)`` of :math:`x \mid y` for :math:`x \sim \mathcal N(\mu, C)`,
    :math:`y = Ax + \sigma\varepsilon`:

    .. math::
        x \mid y \sim \mathcal N\big(\mu + C A^\top S^{-1} (y - A\mu),\;
        C - C A^\top S^{-1} A C\big), \qquad S = A C A^\top + \sigma^2 I.

    :math:`C` may be singular (a deterministic linear generator); :math:`S` is not, for
    :math:`\sigma > 0`.

    Arguments:
        mean: ``(D,)`` :math:`\mu`.
        cov: ``(D, D)`` :math:`C`, positive semi-definite.
        matrix: ``(M, D)`` :math:`A`.
        y: ``(B, M)`` measurements.
        noise_std: :math:`\sigma > 0`.
    """
    cross = cov @ matrix.T  # C A^T, (D, M)
    s = matrix @ cross + noise_std**2 * torch.eye(len(matrix), dtype=cov.dtype, device=cov.device)
    gain = torch.linalg.solve(s, cross.T).T  # C A^T S^{-1}, (D, M)
    post_mean = mean + (y - mean @ matrix.T) @ gain.T
    post_cov = cov - gain @ cross.T
    return post_mean, 0.5 * (post_cov + post_cov.T)
