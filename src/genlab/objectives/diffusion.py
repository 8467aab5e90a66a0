r"""Losses of diffusion models as plain functions (the variational bound's terms are assembled
from :func:`~genlab.objectives.kl_normal` by :mod:`genlab.samplers.diffusion`).

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239 (:math:`L_\text{simple}`).
    Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR 2022,
    arXiv:2202.00512 (the velocity :math:`v`).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from genlab.objectives.reconstruction import mean_squared_error


def simple_loss(
    target: Literal["epsilon", "x0", "v"],
    x0_hat: Tensor,
    eps_hat: Tensor,
    x0: Tensor,
    noise: Tensor,
    alpha_bar: Tensor,
) -> Tensor:
    r"""``(N,)`` :math:`L_\text{simple}`: the mean squared error per coordinate of one target.

    For :math:`x_t = \sqrt{\bar\alpha}\, x_0 + \sqrt{1 - \bar\alpha}\, \epsilon` and a
    denoiser's :math:`(\hat x_0, \hat\epsilon)`:

    .. math::
        \tfrac1D\lVert \epsilon - \hat\epsilon \rVert^2 \ (\texttt{"epsilon"}), \quad
        \tfrac1D\lVert x_0 - \hat x_0 \rVert^2 \ (\texttt{"x0"}), \quad
        \tfrac1D\lVert v - \hat v \rVert^2 \ (\texttt{"v"}), \qquad
        v = \sqrt{\bar\alpha}\,\epsilon - \sqrt{1 - \bar\alpha}\, x_0 .

    Arguments:
        x0_hat, eps_hat: ``(N, ...)`` the denoiser's predictions.
        x0, noise: ``(N, ...)`` the data and the noise :math:`x_t` was made of.
        alpha_bar: :math:`\bar\alpha_t`, broadcastable to ``(N, ...)``.

    Example:
        >>> x = torch.ones(2, 3)
        >>> simple_loss("epsilon", x, x, x, x, torch.tensor(0.5)).tolist()
        [0.0, 0.0]
    """
    if target == "x0":
        return mean_squared_error(x0_hat, x0)
    if target == "v":
        a, b = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        return mean_squared_error(a * eps_hat - b * x0_hat, a * noise - b * x0)
    return mean_squared_error(eps_hat, noise)
