r"""The VQ-VAE's objectives: codebook and commitment losses, and its bound on :math:`\log p(x)`.

With encoder outputs :math:`z_e`, their nearest codes :math:`z_q` and the stop-gradient
:math:`\mathrm{sg}[\cdot]`, the VQ-VAE minimises per example (van den Oord et al., 2017, eq. 3)

.. math::
    -\log p(x \mid z_q) + \lVert \mathrm{sg}[z_e] - z_q \rVert^2
    + \beta\, \lVert z_e - \mathrm{sg}[z_q] \rVert^2,

the reconstruction term reaching the encoder through the straight-through estimator
(:func:`genlab.nn.quantizer.straight_through`), the second (:func:`codebook_loss`) moving the
codes towards the encoder outputs (or replaced by the EMA update), the third
(:func:`commitment_loss`) keeping the encoder outputs near their codes.

References:
    van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS
    2017, arXiv:1711.00937.
"""

from __future__ import annotations

from torch import Tensor


def codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    r"""``(B,)`` :math:`\lVert \mathrm{sg}[z_e] - z_q \rVert^2` summed over each example's grid.

    Arguments:
        z_e: ``(B, ...)`` encoder outputs (no gradient reaches them from this loss).
        z_q: ``(B, ...)`` their codes (the gradient reaches the codebook).
    """
    return (z_e.detach() - z_q).square().flatten(1).sum(-1)


def commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    r"""``(B,)`` :math:`\lVert z_e - \mathrm{sg}[z_q] \rVert^2` summed over each example's grid.

    Weighted by :math:`\beta` (0.25 in the paper) in the objective. Its gradient
    :math:`2 (z_e - z_q)` reaches only the encoder.
    """
    return (z_e - z_q.detach()).square().flatten(1).sum(-1)


def quantized_bound(log_likelihood: Tensor, log_prior: Tensor) -> Tensor:
    r"""``(B,)`` the VQ-VAE's lower bound :math:`\log p(x \mid z_q) + \log p(z_q) \le \log p(x)`.

    The encoder defines a point-mass posterior :math:`q(z \mid x) = \delta_{z_q(x)}` over the
    discrete codes, whose entropy is 0, so the ELBO is

    .. math::
        \mathbb E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, p)
        = \log p(x \mid z_q) + \log p(z_q) \le \log p(x),

    with :math:`p(z_q)` the prior over the whole code grid (a PixelCNN's chain rule). A
    uniform prior over :math:`K` codes at :math:`N` positions gives
    :math:`\log p(x \mid z_q) - N \log K` (van den Oord et al., 2017, section 3.2).

    Arguments:
        log_likelihood: ``(B,)`` :math:`\log p(x \mid z_q)`.
        log_prior: ``(B,)`` :math:`\log p(z_q)`.
    """
    return log_likelihood + log_prior
