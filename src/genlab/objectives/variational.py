r"""Variational objectives: the Gaussian KL term, the ELBO and the importance-weighted bound.

For a latent variable model :math:`p(x, z) = p(z)\, p(x \mid z)` and an approximate posterior
:math:`q(z \mid x)`, every :math:`k \ge 1` gives a lower bound on :math:`\log p(x)`:

.. math::
    \mathcal L_k(x) = \mathbb E_{z_{1..k} \sim q}\left[\log \frac1k \sum_{i=1}^k
    \frac{p(x, z_i)}{q(z_i \mid x)}\right], \qquad
    \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x),

with :math:`\mathcal L_1` the ELBO and :math:`\mathcal L_k \to \log p(x)` as :math:`k \to \infty`
(Burda et al., 2016, Theorem 1).

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, arXiv:1312.6114.
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016,
    arXiv:1509.00519.
    Higgins et al., "beta-VAE", ICLR 2017 (the :math:`\beta` weight on the KL term).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def kl_standard_normal(loc: Tensor, log_scale: Tensor) -> Tensor:
    r"""Per-dimension :math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1))`.

    .. math::
        \mathrm{KL}_j = \tfrac12 \left(\mu_j^2 + \sigma_j^2 - 1\right) - \log \sigma_j .

    Arguments:
        loc: ``(..., K)`` posterior means :math:`\mu`.
        log_scale: ``(..., K)`` posterior log standard deviations :math:`\log \sigma`.

    Returns:
        ``(..., K)`` KL of each latent coordinate, in nats (sum over the last axis for the total).

    Example:
        >>> float(kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)).sum())
        0.0
    """
    return 0.5 * (loc.square() + torch.exp(2.0 * log_scale) - 1.0) - log_scale


def kl_normal(loc_q: Tensor, log_scale_q: Tensor, loc_p: Tensor, log_scale_p: Tensor) -> Tensor:
    r"""Elementwise :math:`\mathrm{KL}(\mathcal N(\mu_q, \sigma_q^2) \,\|\, \mathcal N(\mu_p, \sigma_p^2))`.

    .. math::
        \mathrm{KL} = \log\frac{\sigma_p}{\sigma_q}
        + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12 .

    Arguments:
        loc_q, log_scale_q, loc_p, log_scale_p: broadcastable tensors of means and log standard
            deviations.

    Returns:
        The KL of each coordinate, in nats (sum over coordinates for a diagonal Gaussian).

    Example:
        >>> float(kl_normal(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1)))
        0.5
    """
    ratio = torch.exp(2.0 * (log_scale_q - log_scale_p))
    return (
        log_scale_p
        - log_scale_q
        + 0.5 * (ratio + (loc_q - loc_p).square() * torch.exp(-2.0 * log_scale_p))
        - 0.5
    )


def elbo(log_likelihood: Tensor, kl: Tensor, beta: float = 1.0) -> Tensor:
    r"""The (:math:`\beta`-weighted) evidence lower bound per example.

    .. math::
        \mathcal L_\beta(x) = \mathbb E_{q(z \mid x)}[\log p(x \mid z)]
        - \beta\, \mathrm{KL}(q(z \mid x) \,\|\, p(z)),

    a lower bound on :math:`\log p(x)` for :math:`\beta = 1` (Kingma & Welling, 2014) and a
    weaker bound for :math:`\beta < 1` used during KL warm-up (Bowman et al., 2016,
    arXiv:1511.06349; Higgins et al., 2017).

    Arguments:
        log_likelihood: ``(batch,)`` single-sample estimates of :math:`\log p(x \mid z)`,
            :math:`z \sim q(z \mid x)` (reparameterised).
        kl: ``(batch,)`` :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z))` in closed form.
        beta: weight of the KL term.

    Returns:
        ``(batch,)`` the bound in nats.
    """
    return log_likelihood - beta * kl


def warmup_weight(step: int, warmup_steps: int, final: float = 1.0) -> float:
    r"""The KL weight of step ``step`` (from 0) under a linear warm-up over ``warmup_steps``.

    .. math::
        \beta_t = \beta \min\left(1, \frac{t + 1}{T}\right) \quad (T > 0), \qquad
        \beta_t = \beta \quad (T = 0),

    which lets the decoder learn to use the code before the KL term pulls the posterior onto
    the prior (Bowman et al., 2016, arXiv:1511.06349; Sønderby et al., 2016, arXiv:1602.02282).

    Example:
        >>> warmup_weight(4, 10), warmup_weight(50, 10), warmup_weight(0, 0, 0.5)
        (0.5, 1.0, 0.5)
    """
    if warmup_steps == 0:
        return final
    return final * min(1.0, (step + 1) / warmup_steps)


def free_bits_kl(kl: Tensor, threshold: float) -> Tensor:
    r"""The KL term with free bits per group of latents (Kingma et al., 2016, arXiv:1606.04934).

    .. math::
        \widetilde{\mathrm{KL}} = \sum_g \max\Big(\lambda,\ \frac1B \sum_{b=1}^B
        \mathrm{KL}_{b,g}\Big),

    the batch mean of each group's KL floored at :math:`\lambda` nats (``threshold``): a
    group whose KL is under the floor gets no gradient pulling it onto its prior, so the
    decoder can learn to use it before the KL term closes it. :math:`\lambda = 0` gives the
    batch mean of the plain KL, :math:`\frac1B \sum_{b,g} \mathrm{KL}_{b,g}`.

    Arguments:
        kl: ``(batch, groups)`` each example's KL of each group (a hierarchy's layers).
        threshold: :math:`\lambda \ge 0`, in nats per group.

    Returns:
        ``()`` the floored KL per example (a training objective, not a bound).

    Example:
        >>> float(free_bits_kl(torch.tensor([[0.1, 3.0], [0.3, 1.0]]), 0.5))
        2.5
    """
    return kl.mean(0).clamp(min=threshold).sum()


def log_importance_weights(
    log_likelihood: Tensor, log_prior: Tensor, log_posterior: Tensor
) -> Tensor:
    r""":math:`\log w = \log p(x \mid z) + \log p(z) - \log q(z \mid x)`, elementwise.

    Arguments:
        log_likelihood: ``(k, batch)`` :math:`\log p(x \mid z_i)`.
        log_prior: ``(k, batch)`` :math:`\log p(z_i)`.
        log_posterior: ``(k, batch)`` :math:`\log q(z_i \mid x)`.
    """
    return log_likelihood + log_prior - log_posterior


def iw_bound(log_weights: Tensor) -> Tensor:
    r"""The importance-weighted bound :math:`\log \frac1k \sum_{i=1}^k w_i` from log-weights.

    Computed stably as :math:`\operatorname{logsumexp}_i \log w_i - \log k` (Burda et al., 2016).
    With :math:`k = 1` it is the single-sample ELBO estimate.

    Arguments:
        log_weights: ``(k, batch)`` log importance weights (see :func:`log_importance_weights`).

    Returns:
        ``(batch,)`` the bound in nats.

    Example:
        >>> float(iw_bound(torch.log(torch.tensor([[1.0], [3.0]]))))  # log((1 + 3) / 2)
        0.6931471824645996
    """
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


def iw_bound_in_passes(
    log_weights: Callable[[slice, Tensor], Tensor],
    noise: Tensor,
    n_examples: int,
    rows_per_pass: Callable[[int], int],
) -> Tensor:
    """``(n_examples,)`` :func:`iw_bound` computed in passes of bounded memory: over the
    examples, and over the noise draws of each pass's examples (the same numbers as one pass).

    Arguments:
        log_weights: ``(part, noise)`` -> ``(S, b)`` log weights of the ``b`` examples ``part``
            (a slice) under ``noise`` ``(S, b, K)`` (or ``(S, 1, K)``: shared by them).
        noise: ``(k, n_examples, K)``: each example's draws, or ``(k, 1, K)``: shared.
        rows_per_pass: how many rows one pass may take when a row holds ``b`` examples (1:
            rows are examples; ``b``: rows are noise draws of ``b`` examples), e.g.
            :meth:`genlab.nn.likelihoods.Likelihood.rows_per_pass`.
    """
    bounds = []
    examples = rows_per_pass(1)
    for start in range(0, n_examples, examples):
        part = slice(start, min(start + examples, n_examples))
        part_noise = noise if noise.shape[1] == 1 else noise[:, part]
        draws = part_noise.split(rows_per_pass(part.stop - part.start))
        bounds.append(iw_bound(torch.cat([log_weights(part, chunk) for chunk in draws])))
    return torch.cat(bounds)


def log_standard_normal(z: Tensor) -> Tensor:
    r""":math:`\log \mathcal N(z; 0, I) = -\tfrac12 \lVert z \rVert^2 - \tfrac K2 \log 2\pi`.

    Arguments:
        z: ``(..., K)`` points.

    Returns:
        ``(...)`` log-densities in nats.
    """
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2.0 * math.pi))
