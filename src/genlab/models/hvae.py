r"""Hierarchical VAE: stochastic layers generated top-down, inferred top-down on the same path.

With :math:`L \ge 2` layers (one is allowed, as an ablation) indexed from the top and a deterministic state :math:`h_l`
(:mod:`genlab.nn.ladder`),

.. math::
    h_0 = c, \qquad z_l = \mu_p(h_l) + \sigma_p(h_l) \odot \varepsilon_l, \qquad
    h_{l+1} = h_l + f_l(z_l), \qquad x \mid z \sim p_\theta(x \mid z_0, \dots, z_{L-1}),

with :math:`\varepsilon = (\varepsilon_0, \dots, \varepsilon_{L-1}) \sim \mathcal N(0, I)`,
the top prior standard normal (:math:`\mu_p = 0, \sigma_p = 1`) and the decoder reading every
layer's code (skip connections, as in BIVA): the prior
:math:`p(z) = \prod_l p(z_l \mid z_{<l})` written through its noise (the non-centred
parameterisation). The approximate posterior follows the same top-down path (top-down
inference, Kingma et al., 2016; Sønderby et al., 2016), each layer reading the state and the
normalised data :math:`u(x)`, relative to the prior as in NVAE:

.. math::
    q(\varepsilon_l \mid x, \varepsilon_{<l}) = \mathcal N(\Delta\mu_l, \Delta\sigma_l^2),
    \qquad (\Delta\mu_l, \log\Delta\sigma_l) = g_l(h_l, u(x)),

that is :math:`q(z_l \mid x, z_{<l}) = \mathcal N(\mu_p + \sigma_p \Delta\mu_l,
\sigma_p^2 \Delta\sigma_l^2)` (NVAE's :math:`\mu_p + \Delta\mu`, with :math:`\Delta\mu` in units
of :math:`\sigma_p`). The bottom-up path is the data itself: on digits (1,200 training images)
a feature network per layer, as in the ladder VAE, did worse (1.91 against 1.89 test bits/dim
at ``k = 100``, seed 0, otherwise the same settings without dropout). The map :math:`\varepsilon \mapsto z`
is the same under :math:`p` and :math:`q`, so its Jacobian cancels and each layer's KL is the
standard one in :math:`\varepsilon`,

.. math::
    \mathrm{KL}\big(q(z_l \mid x, z_{<l}) \,\|\, p(z_l \mid z_{<l})\big)
    = \mathrm{KL}\big(\mathcal N(\Delta\mu_l, \Delta\sigma_l^2) \,\|\, \mathcal N(0, I)\big),

(:func:`~genlab.objectives.kl_standard_normal`), and the importance weights are those of a VAE
in :math:`\varepsilon`: :math:`\log w = \log p(x \mid \varepsilon) + \log \mathcal
N(\varepsilon; 0, I) - \log q(\varepsilon \mid x)`. Training maximises the ELBO
:math:`\mathbb E_q \log p(x \mid \varepsilon) - \beta_t \sum_l \mathrm{KL}_l` (each layer's KL
in closed form given the sampled layers above it) with the KL weight warmed up linearly over
``warmup_steps`` (Sønderby et al. found warm-up necessary for hierarchies; on digits a short
one, 100 steps, gave far better samples than 500 or 2,000: domain FID against the training
images 17.5 against 30.3 and 42.3, three seeds), optionally free bits (``free_bits``: each
layer's batch-mean KL floored at :math:`\lambda` nats, :func:`~genlab.objectives.free_bits_kl`,
against a lower layer collapsing onto its prior), dropout in every
network, or the IWAE bound (``train_samples``); :meth:`HVAE.log_prob` is the
importance-weighted bound (``k = 1000`` at evaluation, :attr:`HVAE.default_importance_samples`),
with the likelihoods of the VAE (:mod:`genlab.nn.likelihoods`).

Because the whole prior is :math:`\varepsilon \sim \mathcal N(0, I)` pushed through the
decoder, the shared latent samplers work on :math:`\varepsilon` unchanged: conditional sampling
draws :math:`\varepsilon \sim p(\varepsilon \mid x_o)` by SIR + MALA (or
Metropolis-within-Gibbs) on all layers at once (:func:`~genlab.samplers.complete_from_latent`,
the posterior's mean path as proposal), and posterior sampling given a measurement runs on
:math:`G(\varepsilon)`, the decoder mean. ``encode`` is that mean path, :math:`\varepsilon_l =
\Delta\mu_l` layer after layer, ``(B, sum(latent_dims))``, top layer first.

Posterior collapse per layer (the known failure of hierarchies: the top layers carry nothing)
is logged at each step and validation: the KL of each layer (``kl_layer_<l>``, :math:`l = 0` at
the top) and its active units (``active_layer_<l>``: coordinates with
:math:`\mathrm{Var}_x \Delta\mu > 0.01`, Burda et al., 2016).

References:
    Sønderby, Raiko, Maaløe, Sønderby & Winther, "Ladder Variational Autoencoders", NeurIPS
    2016, arXiv:1602.02282.
    Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS
    2016, arXiv:1606.04934.
    Vahdat & Kautz, "NVAE: A Deep Hierarchical Variational Autoencoder", NeurIPS 2020,
    arXiv:2007.03898.
    Child, "Very Deep VAEs Generalize Autoregressive Models", ICLR 2021, arXiv:2011.10650.
    Maaløe, Fraccaro, Liévin & Winther, "BIVA: A Very Deep Hierarchy of Latent Variables for
    Generative Modeling", NeurIPS 2019, arXiv:1902.02102 (skip connections to the decoder).
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016,
    arXiv:1509.00519.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import ConfigError
from genlab.models.base import CONV_IMAGE_BUDGETS, Capabilities, GenerativeModel
from genlab.models.code_prior import CODE_PRIORS, CodePrior, MixtureCodePrior
from genlab.nn import (
    ACTIVATIONS,
    MLP,
    Activation,
    AffineNormalizer,
    build_decoder,
    build_encoder,
)
from genlab.nn.ladder import TopDownBlock
from genlab.nn.likelihoods import (
    DecoderLikelihood,
    Likelihood,
    check_decoder_likelihood,
    make_likelihood,
    resolve_decoder_likelihood,
)
from genlab.objectives import (
    elbo,
    free_bits_kl,
    iw_bound,
    iw_bound_in_passes,
    kl_standard_normal,
    log_importance_weights,
    log_standard_normal,
    warmup_weight,
)
from genlab.samplers import (
    LatentGenerator,
    LatentMethod,
    LatentVariableModel,
    complete_from_latent,
)

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

HVAEArchitecture = Literal["mlp", "conv", "linear"]
HVAE_ARCHITECTURES: tuple[str, ...] = get_args(HVAEArchitecture)
ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass(frozen=True)
class HVAEConfig:
    """Attributes:
    latent_dims: sizes of the stochastic layers, the top one first. A hierarchy has two or
        more; one layer is the ablation (this family's networks and training without the
        hierarchy, README).
    architecture: ``"mlp"``, ``"conv"`` (images: the posteriors read the data through a conv
        net's features, :class:`~genlab.nn.ConvEncoder`, and the decoder is a
        :class:`~genlab.nn.ConvDecoder`; the ladder itself stays MLPs on vectors) or
        ``"linear"`` (every map affine, the priors' scales free parameters: a linear-Gaussian
        hierarchy).
    channels: channels of the conv nets' first layer (``"conv"`` only).
    width: size of the top-down state.
    hidden: hidden sizes of every MLP (bottom-up, prior, posterior, merge, decoder); a linear
        hierarchy has none.
    activation: non-linearity between layers.
    likelihood: the decoder likelihood (:mod:`genlab.nn.likelihoods`); ``"auto"`` as the VAE.
    gaussian_std: fixed decoder std of the Gaussian likelihood; ``None`` learns one.
    warmup_steps: steps over which the KL weight rises linearly from 0 to 1.
    free_bits: nats per layer below which a layer's batch-mean KL is not penalised
        (:func:`~genlab.objectives.free_bits_kl`; 0: the plain ELBO), against a lower
        layer collapsing onto its prior.
    train_samples: importance samples of the training objective (1: ELBO; k > 1: the
        importance-weighted bound, IWAE).
    val_samples: importance samples of the validation bound (model selection).
    dropout: dropout after every hidden activation while training (a regulariser: digits has
        about 1,200 training images).
    prior: ``"normal"`` (:math:`\\varepsilon \\sim \\mathcal N(0, I)`) or ``"mixture"``: after
        training, a Gaussian mixture over :math:`\\varepsilon` (all layers) fitted to posterior
        draws of the training data (:mod:`genlab.models.code_prior`).
    prior_components: components of the ``"mixture"`` prior.
    """

    latent_dims: tuple[int, ...] = (16, 16)
    architecture: HVAEArchitecture = "mlp"
    width: int = 512
    channels: int = 16
    hidden: tuple[int, ...] = (256,)
    activation: Activation = "relu"
    likelihood: DecoderLikelihood = "auto"
    gaussian_std: float | None = None
    warmup_steps: int = 100
    free_bits: float = 0.0
    train_samples: int = 1
    val_samples: int = 1
    dropout: float = 0.1
    prior: CodePrior = "normal"
    prior_components: int = 50

    def __post_init__(self) -> None:
        check(
            len(self.latent_dims) >= 1 and all(k >= 1 for k in self.latent_dims),
            f"latent_dims must be one or more sizes >= 1, got {self.latent_dims}",
        )
        check(
            self.architecture in HVAE_ARCHITECTURES,
            f"architecture must be one of {HVAE_ARCHITECTURES}, got {self.architecture!r}",
        )
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check_decoder_likelihood(self.likelihood, self.gaussian_std)
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.free_bits >= 0, f"free_bits must be >= 0, got {self.free_bits}")
        check(self.train_samples >= 1, f"train_samples must be >= 1, got {self.train_samples}")
        check(
            self.train_samples == 1 or self.warmup_steps == 0,
            "warmup_steps weights the KL terms of the ELBO; the IWAE objective (train_samples "
            "> 1) has none",
        )
        check(
            self.train_samples == 1 or self.free_bits == 0,
            "free_bits floors the KL terms of the ELBO; the IWAE objective (train_samples > 1) "
            "has none",
        )
        check(self.val_samples >= 1, f"val_samples must be >= 1, got {self.val_samples}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.prior in CODE_PRIORS, f"prior must be one of {CODE_PRIORS}, got {self.prior!r}")
        check(self.prior_components >= 1, "prior_components must be >= 1")


@dataclass(frozen=True)
class Inference:
    """One top-down pass of the posterior: the noise drawn, what the bounds need from it.

    Attributes:
        eps: ``(*batch, K)`` :math:`\\varepsilon`, all layers, the top one first.
        params: ``(*batch, n_params, D)`` likelihood parameters at :math:`\\varepsilon`.
        log_posterior: ``(*batch,)`` :math:`\\log q(\\varepsilon \\mid x)`.
        kl: ``(*batch, L)`` each layer's :math:`\\mathrm{KL}(q \\| p)` given the layers above.
        loc: ``(*batch, K)`` :math:`\\Delta\\mu` of every layer.
        log_scale: ``(*batch, K)`` :math:`\\log\\Delta\\sigma` of every layer.
    """

    eps: Tensor
    params: Tensor
    log_posterior: Tensor
    kl: Tensor
    loc: Tensor
    log_scale: Tensor


class HVAE(MixtureCodePrior, GenerativeModel):
    """Top-down hierarchical VAE with IW-bound log_prob (see module)."""

    family = "hvae"
    capabilities = Capabilities(
        sample=True,
        log_prob="lower_bound",
        encode=True,
        decode=True,
        conditional="mcmc",
        posterior="mcmc",
    )
    description = "hierarchical VAE, top-down inference"
    task_notes = {
        "generation": "ancestral, top layer down",
        "density": "ELBO / importance-weighted, k = 1000 at evaluation",
        "representation": "the posterior's mean path, all layers",
        "conditional": "all layers' noise ~ p(ε ∣ x_o) by SIR + MALA, or Metropolis-within-Gibbs",
        "posterior": "SIR + MALA on all layers' noise, read as x = the decoder mean",
    }
    config_class = HVAEConfig
    pixel_noise = True
    default_importance_samples = 1000
    default_train = {"epochs": 1000, "batch_size": 128, "lr": 1e-3, "patience": 50}
    budgets = {
        "smoke": {
            "steps": 40,
            "latent_dims": (2, 2),
            "width": 16,
            "hidden": (16,),
            "warmup_steps": 10,
        },
        "fast": {"epochs": 300, "patience": 30},
        "full": {"epochs": 2000, "patience": 50},
    }
    # 28x28 images: the VAE's conv nets, without dropout and longer (real MNIST, seed 0, fast:
    # test bound 1.536 bits/dim with dropout 0.1 and 25 epochs, 1.525 without, 1.467 at 50
    # epochs, its validation loss still falling at 25; README); the mixture prior, as the VAE's
    step_settings = ("warmup_steps",)
    large_image_budgets = {
        None: {**CONV_IMAGE_BUDGETS[None], "dropout": 0.0, "prior": "mixture"},
        "smoke": {**CONV_IMAGE_BUDGETS["smoke"], "prior": "mixture"},
        "fast": {**CONV_IMAGE_BUDGETS["fast"], "dropout": 0.0, "epochs": 50, "prior": "mixture"},
        "full": {**CONV_IMAGE_BUDGETS["full"], "dropout": 0.0, "epochs": 120, "prior": "mixture"},
    }

    def __init__(self, config: HVAEConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        d, shape = info.n_features, info.event_shape
        self.latent_dim = sum(config.latent_dims)
        self.likelihood_name = resolve_decoder_likelihood(config.likelihood, info)
        self.record_decisions(likelihood=self.likelihood_name)
        self.likelihood: Likelihood = make_likelihood(
            self.likelihood_name, info, config.gaussian_std
        )
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
        check(
            config.architecture != "conv" or info.kind == "image",
            "hvae: architecture=conv needs image data",
        )
        linear, conv = config.architecture == "linear", config.architecture == "conv"
        hidden = () if linear else config.hidden
        width, activation, dims = config.width, config.activation, config.latent_dims
        dropout, channels = config.dropout, config.channels
        # what the posteriors read of the data: the normalised pixels, or a conv net's features
        self.features = (
            build_encoder(shape, width, "conv", channels=channels, activation=activation)
            if conv
            else None
        )
        self.blocks = nn.ModuleList(
            TopDownBlock(
                width,
                width if conv else d,
                k,
                hidden,
                activation,
                top=i == 0,
                bottom=i == len(dims) - 1,
                linear=linear,
                dropout=dropout,
            )
            for i, k in enumerate(dims)
        )
        self.h_top = nn.Parameter(torch.zeros(width))
        # the decoder reads every layer's code (skip connections); a conv decoder stacks the
        # likelihood's parameters along channels, as the VAE's
        n_params = self.likelihood.n_params
        self.decoder = (
            build_decoder(
                self.latent_dim,
                (n_params * shape[0], *shape[1:]),
                "conv",
                channels=channels,
                activation=activation,
                flat=True,
            )
            if conv
            else MLP(self.latent_dim, n_params * d, () if linear else (width, *hidden), activation)
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.build_code_prior(config.prior, config.prior_components)

    # ------------------------------------------------------------------ the model's pieces

    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        self.normalizer.fit(x_train)
        self.likelihood.prepare(x_train)
        self.likelihood.check_data(x_train)

    @torch.no_grad()
    def finish_training(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """``prior="mixture"``: fit the mixture to one posterior draw of every layer's noise
        per training example, :math:`\\varepsilon_i \\sim q(\\varepsilon \\mid x_i)` (a sample of
        the aggregate posterior: a collapsed layer's noise stays :math:`\\mathcal N(0, 1)` there,
        where its posterior means would all sit at 0)."""
        if self.prior is None:
            return
        codes = []
        for chunk in x_train.split(1024):
            shape = (1, len(chunk), self.latent_dim)
            noise = torch.randn(shape, generator=generator, device=chunk.device, dtype=chunk.dtype)
            codes.append(self.infer(self._inputs(chunk), noise).eps.squeeze(0))
        self.fit_code_prior(torch.cat(codes), generator)

    @property
    def needs_dequantization(self) -> bool:
        """False for discrete likelihoods: their density is constant on each level's bin."""
        return not self.likelihood.discrete

    def _inputs(self, x: Tensor) -> Tensor:
        """``(B, F)`` what every layer's posterior reads of the data: :math:`u = (x - m)/s`
        flattened (``F = D``), or the conv net's features of it (``F = width``)."""
        u = self.normalizer(x)
        return u.flatten(1) if self.features is None else self.features(u)

    def _params(self, z: list[Tensor]) -> Tensor:
        """``(*batch, n_params, D)`` likelihood parameters from every layer's code ``(*batch, k_l)``."""
        z_all = torch.cat(z, -1)
        flat = self.decoder(z_all.reshape(-1, z_all.shape[-1]))  # a conv decoder takes (N, K)
        return flat.view(*z_all.shape[:-1], self.likelihood.n_params, self.info.n_features)

    def generate(self, eps: Tensor) -> Tensor:
        """``(*batch, n_params, D)`` the parameters of :math:`p(x \\mid \\varepsilon)`: the
        generative path from the noise ``(*batch, K)`` of every layer, top first."""
        h = self.h_top.expand(*eps.shape[:-1], -1)
        z = []
        for block, e in zip(self.blocks, eps.split(self.config.latent_dims, -1), strict=True):
            loc, log_scale = block.prior(h)
            z.append(loc + log_scale.exp() * e)
            h = block.merge(h, z[-1])
        return self._params(z)

    def infer(self, u: Tensor, noise: Tensor | None) -> Inference:
        """The posterior's top-down pass: :math:`\\varepsilon_l = \\Delta\\mu_l +
        \\Delta\\sigma_l \\odot \\eta_l` layer after layer.

        Arguments:
            u: ``(B, D)`` the normalised data (:meth:`_inputs`).
            noise: ``(*batch, B, K)`` standard normal :math:`\\eta`, or ``None`` for the mean
                path (:math:`\\eta = 0`, batch ``(B,)``).
        """
        batch = u.shape[:-1] if noise is None else noise.shape[:-1]
        u = u.expand(*batch, -1)
        h = self.h_top.expand(*batch, -1)
        dims = self.config.latent_dims
        etas = [None] * len(dims) if noise is None else noise.split(dims, -1)
        eps, z, locs, log_scales, kls = [], [], [], [], []
        for block, eta in zip(self.blocks, etas, strict=True):
            loc, log_scale = block.posterior(h, u)
            e = loc if eta is None else loc + log_scale.exp() * eta
            prior_loc, prior_log_scale = block.prior(h)
            z.append(prior_loc + prior_log_scale.exp() * e)
            h = block.merge(h, z[-1])
            eps.append(e)
            locs.append(loc)
            log_scales.append(log_scale)
            kls.append(kl_standard_normal(loc, log_scale).sum(-1))
        log_scale = torch.cat(log_scales, -1)
        # log q(eps | x) = log N(eta; 0, I) - sum log(Delta sigma), exact for eps = loc + scale eta
        log_posterior = -log_scale.sum(-1)
        if noise is not None:
            log_posterior = log_posterior + log_standard_normal(noise)
        return Inference(
            eps=torch.cat(eps, -1),
            params=self._params(z),
            log_posterior=log_posterior,
            kl=torch.stack(kls, -1),
            loc=torch.cat(locs, -1),
            log_scale=log_scale,
        )

    # ------------------------------------------------------------------ the four tasks

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """The posterior's mean path :math:`\\varepsilon_l = \\Delta\\mu_l`, ``(B, K)``, top first."""
        self.check_input(x, context=context)
        return self.infer(self._inputs(x), None).eps

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """The mean of :math:`p(x \\mid \\varepsilon)` in data units, ``(B, *event_shape)``."""
        self.check_context(context, len(z))
        return self.likelihood.mean(self.generate(z)).view(-1, *self.info.event_shape)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        """Ancestral samples: :math:`\\varepsilon \\sim p(\\varepsilon)` (:meth:`draw_codes`) down the layers,
        then :math:`x \\sim p(x \\mid \\varepsilon)`."""
        self.check_context(context, n)
        eps = self.draw_codes(n, generator)
        x = self.likelihood.sample(self.generate(eps), generator)
        return x.view(n, *self.info.event_shape).float()

    def log_prob(
        self,
        x: Tensor,
        *,
        k: int = 1,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(B,)`` the importance-weighted bound :math:`\log \frac1k \sum_i w_i \le \log p(x)`.

        Arguments:
            x: ``(B, *event_shape)`` data (dequantised values for discrete data).
            k: importance samples; 1 gives the ELBO.
            generator: as the VAE's: with one, each example draws its own noise; without,
                ``k`` noise vectors from a fixed seed are shared by the batch, so each
                example's bound does not depend on its batch.
        """
        self.check_input(x, context=context)
        if k < 1:
            raise ConfigError(f"k (importance samples) must be >= 1, got {k}")
        shared = generator is None
        if shared:
            generator = torch.Generator(device=x.device).manual_seed(0)
        target = self.likelihood.checked_target(x)
        u = self._inputs(x)
        noise_shape = (k, 1 if shared else len(x), self.latent_dim)
        noise = torch.randn(noise_shape, generator=generator, device=x.device).to(target.dtype)
        channels = self.config.channels if self.config.architecture == "conv" else 0
        return iw_bound_in_passes(
            lambda part, eps: self._log_weights(
                target[part], u[part], eps.expand(-1, len(target[part]), -1)
            ),
            noise, len(x), partial(self.likelihood.rows_per_pass, hidden_channels=channels),
        )  # fmt: skip

    def _log_weights(self, target: Tensor, u: Tensor, noise: Tensor) -> Tensor:
        r"""``(S, B)`` :math:`\log p(x \mid \varepsilon_i) + \log p(\varepsilon_i) - \log
        q(\varepsilon_i \mid x)` for the posterior noise ``(S, B, K)``."""
        inference = self.infer(u, noise)
        return log_importance_weights(
            self.likelihood.log_prob(inference.params, target),
            self.log_prior(inference.eps),
            inference.log_posterior,
        )

    def latent_variable_model(self, context: Tensor | None = None) -> LatentVariableModel:
        r"""The pieces of :math:`p(\varepsilon)\, p(x \mid \varepsilon)` the latent samplers
        need, the posterior's mean path and scales as proposal."""
        shape = self.info.event_shape

        def coordinate_log_prob(params: Tensor, x: Tensor) -> Tensor:
            return self.likelihood.coordinate_log_prob(params, self.likelihood.target(x))

        def proposal(x: Tensor) -> tuple[Tensor, Tensor]:
            inference = self.infer(self._inputs(x.view(-1, *shape)), None)
            return inference.loc, inference.log_scale.exp()

        def check_observed(x: Tensor, observed: Tensor) -> None:
            self.likelihood.check_target(self.likelihood.target(x)[:, observed])

        return LatentVariableModel(
            start=self.normalizer.shift.expand(shape).flatten(),  # the training mean
            decode=self.generate,
            coordinate_log_prob=coordinate_log_prob,
            draw=self.likelihood.sample,
            proposal=proposal,
            check_observed=check_observed,
            log_prior=self.log_prior,
        )

    def latent_generator(self, context: Tensor | None = None) -> LatentGenerator:
        r""":math:`G(\varepsilon) = \mathbb E[x \mid \varepsilon]`, the decoder mean, as the VAE's."""
        shape = self.info.event_shape

        def generate(eps: Tensor, rows: Tensor) -> Tensor:
            return self.likelihood.mean(self.generate(eps)).view(-1, *shape)

        return LatentGenerator(self.latent_dim, generate, self.h_top.device, self.log_prior)

    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: LatentMethod = "mala",
        steps: int = 300,
        n_candidates: int = 32,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, batch, *event_shape)`` draws of :math:`x_u \sim p(x_u \mid x_o)` by MCMC on all
        layers' noise :math:`\varepsilon` (as :meth:`genlab.models.VAE.sample_conditional`:
        ``"mala"`` SIR + MALA, or ``"gibbs"`` Metropolis-within-Gibbs; exact at stationarity).

        Arguments:
            x: ``(batch, *event_shape)``; only observed coordinates are read.
            mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
            n: completions per example (independent chains).
            sampler: ``"mala"`` or ``"gibbs"``.
            steps: MALA transitions or Metropolis-within-Gibbs iterations per chain.
            n_candidates: SIR candidates per chain (``"mala"``).
        """
        self.check_input(x, context=context)
        return complete_from_latent(
            self.latent_variable_model,
            x,
            mask,
            n,
            method=sampler,
            steps=steps,
            n_candidates=n_candidates,
            generator=generator,
        )

    # ------------------------------------------------------------------ training

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """One ELBO step, the KL weighted by :func:`~genlab.objectives.warmup_weight` (and
        floored per layer by :func:`~genlab.objectives.free_bits_kl` with ``free_bits > 0``),
        or one IWAE step with ``train_samples > 1``."""
        target = self.likelihood.target(x.flatten(1))
        u = self._inputs(x)
        samples = self.config.train_samples
        shape = (len(x), self.latent_dim) if samples == 1 else (samples, len(x), self.latent_dim)
        noise = torch.randn(shape, generator=generator, device=x.device, dtype=target.dtype)
        if samples > 1:
            loss = -iw_bound(self._log_weights(target, u, noise)).mean()
            optimizers.minimize(loss)
            return {"loss": loss.detach()}
        inference = self.infer(u, noise)
        # batch sums of both terms: the loss needs no per-example values
        log_likelihood = self.likelihood.total_log_prob(inference.params, target)
        kl = inference.kl.sum(0)  # (L,)
        kl_term = free_bits_kl(inference.kl, self.config.free_bits) * len(x)  # 0: kl.sum()
        weight = warmup_weight(int(self.steps_done), self.config.warmup_steps)
        loss = -elbo(log_likelihood, kl_term, weight) / len(x)
        optimizers.minimize(loss)
        if self.config.warmup_steps:
            self.steps_done += 1
        layers = {f"kl_layer_{i}": v.detach() / len(x) for i, v in enumerate(kl)}
        return {"loss": loss.detach(), "kl": kl.sum().detach() / len(x), **layers}

    def validation_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Minus the IW bound with ``val_samples`` samples."""
        return -self.log_prob(x, k=self.config.val_samples, generator=generator)

    @torch.no_grad()
    def validation_metrics(self, x_val: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Each layer's mean KL (one posterior draw) and active units on ``x_val``."""
        u = self._inputs(x_val)
        shape = (len(x_val), self.latent_dim)
        noise = torch.randn(shape, generator=generator, device=x_val.device, dtype=x_val.dtype)
        kl = self.infer(u, noise).kl.mean(0)  # (L,)
        active = self.infer(u, None).loc.var(0) > ACTIVE_UNIT_THRESHOLD  # (K,)
        metrics = {"kl": float(kl.sum())}
        for i, part in enumerate(active.split(self.config.latent_dims)):
            metrics[f"kl_layer_{i}"] = float(kl[i])
            metrics[f"active_layer_{i}"] = float(part.sum())
        return metrics
