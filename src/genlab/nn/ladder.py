r"""The blocks of a top-down hierarchical VAE.

A hierarchy of :math:`L` stochastic layers, indexed from the top (:math:`l = 0`), shares one
deterministic top-down state :math:`h` between generation and inference (Sønderby et al., 2016;
Kingma et al., 2016; Vahdat & Kautz, 2020). Starting from a learned :math:`h`, each
:class:`TopDownBlock` reads :math:`h` for its prior's parameters, :math:`h` and the data for its
posterior's, and adds its sample back into :math:`h` (:meth:`TopDownBlock.merge`, a residual
update). The maths (what is sampled, the bounds) lives in :mod:`genlab.models.hvae`; these
modules only hold the parameters.

With ``linear`` every map is affine and the prior's scale is a free parameter per coordinate
(not a function of :math:`h`), so that the model is linear-Gaussian and its marginal
likelihood has a closed form (the tests' reference).

References:
    Sønderby, Raiko, Maaløe, Sønderby & Winther, "Ladder Variational Autoencoders", NeurIPS
    2016, arXiv:1602.02282.
    Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS
    2016, arXiv:1606.04934 (top-down inference sharing the generative path).
    Vahdat & Kautz, "NVAE: A Deep Hierarchical Variational Autoencoder", NeurIPS 2020,
    arXiv:2007.03898 (residual posterior).
    Child, "Very Deep VAEs Generalize Autoregressive Models", ICLR 2021, arXiv:2011.10650.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.nn.mlp import MLP, Activation


class TopDownBlock(nn.Module):
    r"""One stochastic layer of size :math:`k` on a top-down state of size ``width``.

    - :meth:`prior`: :math:`h \mapsto (\mu_p, \log\sigma_p)` of :math:`p(z_l \mid z_{<l})`;
      the top layer (``top``) has the standard normal prior and no network;
    - :meth:`posterior`: :math:`(h, u) \mapsto (\Delta\mu, \log\Delta\sigma)`, the posterior
      relative to the prior, from the state and the (normalised) data :math:`u`;
    - :meth:`merge`: :math:`(h, z_l) \mapsto h + f(z_l)` (not the bottom layer's: nothing
      reads the state after it).

    Arguments:
        width: size of :math:`h`.
        data_features: size of :math:`u`.
        latent_dim: :math:`k`.
        hidden: hidden sizes of each MLP (empty in a linear hierarchy).
        activation: their non-linearity.
        top: the top layer (standard normal prior).
        bottom: the bottom layer (no merge).
        linear: the prior's scale is a parameter, not a function of :math:`h`.
        dropout: dropout after each hidden activation.
    """

    def __init__(
        self,
        width: int,
        data_features: int,
        latent_dim: int,
        hidden: Sequence[int],
        activation: Activation,
        *,
        top: bool,
        bottom: bool,
        linear: bool,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim, self.top, self.linear = latent_dim, top, linear
        self.prior_net: nn.Module | None = None
        if not top:
            outputs = latent_dim if linear else 2 * latent_dim
            self.prior_net = MLP(width, outputs, hidden, activation, dropout)
            if linear:
                self.prior_log_scale = nn.Parameter(torch.zeros(latent_dim))
        self.posterior_net = MLP(
            width + data_features, 2 * latent_dim, hidden, activation, dropout
        )
        self.merge_net = None if bottom else MLP(latent_dim, width, hidden, activation, dropout)

    def prior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., k)`` mean and log scale of :math:`p(z_l \\mid z_{<l})` from ``h`` ``(..., width)``."""
        shape = (*h.shape[:-1], self.latent_dim)
        if self.prior_net is None:
            zeros = h.new_zeros(shape)
            return zeros, zeros
        if self.linear:
            return self.prior_net(h), self.prior_log_scale.expand(shape)
        loc, log_scale = self.prior_net(h).chunk(2, dim=-1)
        return loc, log_scale

    def posterior(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., k)`` :math:`\\Delta\\mu, \\log\\Delta\\sigma` from ``h`` ``(..., width)`` and the
        data ``u`` ``(..., data_features)``."""
        loc, log_scale = self.posterior_net(torch.cat([h, u], dim=-1)).chunk(2, dim=-1)
        return loc, log_scale

    def merge(self, h: Tensor, z: Tensor) -> Tensor:
        """The next state :math:`h + f(z_l)`, ``(..., width)`` (``h`` itself below the bottom)."""
        return h if self.merge_net is None else h + self.merge_net(z)
