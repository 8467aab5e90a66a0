r"""Closed forms between multivariate normal distributions (float64, on the CPU).

For :math:`P = \mathcal N(\mu_1, \Sigma_1)` and :math:`Q = \mathcal N(\mu_2, \Sigma_2)` in
:math:`\mathbb R^d`:

.. math::
    \mathrm{KL}(P\|Q) = \tfrac12\Big[\operatorname{tr}(\Sigma_2^{-1}\Sigma_1)
        + (\mu_2-\mu_1)^\top\Sigma_2^{-1}(\mu_2-\mu_1) - d
        + \log\frac{\det\Sigma_2}{\det\Sigma_1}\Big],

.. math::
    W_2^2(P, Q) = \|\mu_1-\mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
        - 2\operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2},

the squared Wasserstein-2 distance, which FID calls the Frechet distance (Dowson & Landau
1982; Heusel et al. 2017). The trace term equals :math:`\sum_i \sqrt{\lambda_i(\Sigma_1
\Sigma_2)}`, because :math:`\Sigma_1\Sigma_2` is similar to the PSD matrix
:math:`A^\top\Sigma_2 A` for any factor :math:`AA^\top = \Sigma_1`. :func:`trace_sqrt_product`
uses the Cholesky factor for :math:`A` (an eigen-decomposition when :math:`\Sigma_1` is
singular) and a symmetric eigenvalue solver: no square root of a non-symmetric matrix, so it
is several times faster than ``scipy.linalg.sqrtm(S1 @ S2)`` and never returns complex parts.

References:
    Dowson & Landau, "The Frechet distance between multivariate normal distributions",
    J. Multivariate Analysis, 1982.
    Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash
    equilibrium", NeurIPS 2017, arXiv:1706.08500.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from genlab.errors import DataError
from genlab.stats.validation import ArrayLike


def _as_gaussian(mu: ArrayLike, cov: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mu.detach().cpu() if hasattr(mu, "detach") else mu, dtype=np.float64)
    s = np.asarray(cov.detach().cpu() if hasattr(cov, "detach") else cov, dtype=np.float64)
    m = m.reshape(-1)
    if s.ndim == 0 and m.size == 1:
        s = s.reshape(1, 1)
    if s.shape != (m.size, m.size):
        raise DataError(
            f"{name}: mean of size {m.size} needs a {m.size}x{m.size} covariance, "
            f"got shape {s.shape}"
        )
    if not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise DataError(f"{name}: mean or covariance contains NaN or infinite values")
    return m, s


def _check_pair(m1: np.ndarray, m2: np.ndarray) -> None:
    if m1.size != m2.size:
        raise DataError(f"Gaussians of different dimensions ({m1.size} and {m2.size})")


def _psd_factor(cov: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(A, lower_triangular)`` with :math:`AA^\\top = \\Sigma`: Cholesky, else via ``eigh``."""
    try:
        return scipy.linalg.cholesky(cov, lower=True, check_finite=False), True
    except np.linalg.LinAlgError:
        w, u = scipy.linalg.eigh(cov, check_finite=False)
        return u * np.sqrt(np.clip(w, 0.0, None)), False


def trace_sqrt_product(cov1: ArrayLike, cov2: ArrayLike) -> float:
    r""":math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i\sqrt{\lambda_i(A^\top\Sigma_2A)}`,
    :math:`AA^\top=\Sigma_1`, for symmetric PSD ``(d, d)`` matrices (see module docstring).

    Tiny negative eigenvalues from rounding count as zero.
    """
    s1 = np.asarray(cov1, dtype=np.float64)
    s2 = np.asarray(cov2, dtype=np.float64)
    a, triangular = _psd_factor(s1)
    a = np.asfortranarray(a)
    if triangular:  # two triangular products (BLAS trmm), half the work of general ones
        t = blas.dtrmm(1.0, a, np.asfortranarray(s2), side=1, lower=1)  # S2 A
        m = blas.dtrmm(1.0, a, t, side=0, lower=1, trans_a=1, overwrite_b=1)  # A^T S2 A
    else:
        m = a.T @ (s2 @ a)
    eigenvalues = scipy.linalg.eigvalsh(m, check_finite=False, overwrite_a=True, driver="evd")
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    r"""Squared Wasserstein-2 (Frechet) distance between two Gaussians (see module docstring).

    Arguments:
        mu1, mu2: means ``(d,)``.
        cov1, cov2: symmetric PSD covariances ``(d, d)``.

    Returns:
        :math:`W_2^2 \ge 0` as FID reports it (not its square root); rounding below zero is
        returned as 0.

    Example:
        >>> import numpy as np
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
        4.0
    """
    m1, s1 = _as_gaussian(mu1, cov1, "first Gaussian")
    m2, s2 = _as_gaussian(mu2, cov2, "second Gaussian")
    _check_pair(m1, m2)
    diff = m1 - m2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)


def kl_gaussians(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    r""":math:`\mathrm{KL}(\mathcal N(\mu_1,\Sigma_1)\,\|\,\mathcal N(\mu_2,\Sigma_2))` in nats.

    Computed with Cholesky factors :math:`L_i`: :math:`\operatorname{tr}(\Sigma_2^{-1}\Sigma_1)
    = \|L_2^{-1}L_1\|_F^2` and :math:`\log\det\Sigma_i = 2\sum_j\log (L_i)_{jj}`.

    Raises:
        DataError: if a covariance is not positive definite.

    Example:
        >>> import numpy as np
        >>> round(kl_gaussians(np.zeros(1), np.eye(1), np.ones(1), np.eye(1)), 6)
        0.5
    """
    m1, s1 = _as_gaussian(mu1, cov1, "first Gaussian")
    m2, s2 = _as_gaussian(mu2, cov2, "second Gaussian")
    _check_pair(m1, m2)
    factors = []
    for s, name in ((s1, "first"), (s2, "second")):
        try:
            factors.append(scipy.linalg.cholesky(s, lower=True, check_finite=False))
        except np.linalg.LinAlgError:
            raise DataError(
                f"{name} covariance is not positive definite: KL is infinite or undefined"
            ) from None
    l1, l2 = factors
    solved = scipy.linalg.solve_triangular(l2, l1, lower=True, check_finite=False)
    maha = scipy.linalg.solve_triangular(l2, m2 - m1, lower=True, check_finite=False)
    log_det = 2.0 * (np.log(np.diag(l2)).sum() - np.log(np.diag(l1)).sum())
    d = m1.size
    value = 0.5 * (np.square(solved).sum() + maha @ maha - d + log_det)
    return max(float(value), 0.0) if math.isfinite(value) else float(value)
