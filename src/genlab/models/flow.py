r"""Normalizing flows: an exact density by the change of variables.

**Direction: the transform maps data x to latent z**, and :meth:`Flow.sample` runs the inverse:

.. math::
    z = f(x) = f_L \circ \dots \circ f_1 \circ f_0(x), \qquad
    \log p(x) = \log \mathcal N(z; 0, I) + \sum_{l=0}^{L} \log |\det J_{f_l}|,

where :math:`f_0` is the pre-transform to the real line: a logit on the dequantised support of
discrete data (:class:`~genlab.nn.flows.Logit`, on by default there) or a standardisation
otherwise, its log-Jacobian included, so ``log_prob`` is a density in data units.

Two layer stacks (``transform``):

- ``"realnvp"``: affine couplings with alternating masks (parity masks for vectors, checkerboard
  masks for images), MLP conditioners for vectors and conv conditioners for images
  (``conditioner``), optionally an invertible linear / 1x1 layer (``linear``); with conv
  conditioners, ``levels`` adds RealNVP's and Glow's coarser scales: couplings on the image
  squeezed by 2x2 space-to-depth, once per level, with channel masks there
  (:class:`~genlab.nn.flows.Squeezed`; the layers keep the image's shape, so the latent has
  the data's layout);
- ``"maf"``: masked autoregressive layers with MADE conditioners (on flattened data), the order
  reversed between layers;
- ``"spline"``: rational-quadratic spline couplings (neural spline flows) with MLP conditioners
  on flattened data: many times more flexible per layer than an affine coupling, which narrow
  multi-modal densities such as ``ring`` need.

**Base distribution** (``prior``): :math:`\mathcal N(0, I)`, or with ``prior="mixture"`` a
Gaussian mixture fitted by EM after training to the codes :math:`z_i = f(\tilde x_i)` of the
(dequantised) training data, :math:`\pi(z) = \sum_m w_m \mathcal N(z; \mu_m, \Sigma_m)`, with
diagonal covariances :math:`\Sigma_m = \operatorname{diag} \sigma_m^2` for more than
``FULL_COVARIANCE_DIMS`` codes (784 on MNIST) and full ones otherwise (``prior_covariance``), so
that

.. math::
    \log p(x) = \log \pi(f(x)) + \sum_l \log |\det J_{f_l}|,

still exact. The layers train, validate and are selected under :math:`\mathcal N(0, I)`
(every component of the unfitted mixture is the standard normal,
:mod:`genlab.models.code_prior`); the fit moves the base's mass to where the training codes
are. On 28x28 MNIST (``fast``, three seeds, README) a 10-component mixture raised the share of
confidently classified samples from 0.630 to 0.748, lowered the domain FID from 1,035 to 410
and added 2.7-3.0 nats an image of test log-likelihood to the same layers.

Each stack has an ActNorm layer before each of its layers on images (``actnorm``; vectors are
standardised by the pre-transform and go without). **The model is the average of the trained
weights** (an EMA, ``ema_decay``; :mod:`genlab.nn.averaging`): ``log_prob``, ``sample``,
``encode``, ``decode`` and validation use it, the training step trains the layers themselves.
On two moons after 3,000 steps the average gained 0.021 nats of validation log-likelihood over
the last weights (with ActNorm, mean of 3 seeds; ``scripts/flow_vs_mixture.py --validation``).

They are options of one family rather than three: they share the base distribution, the
pre-transform, every method and the training step, and differ only in the layer stack, so one
class with a ``transform`` option is less code than three (``--set transform=maf``).

Discrete data is dequantised by the trainer (:math:`\tilde x = x + \delta(u - \tfrac12)`), so the
model is a density on the dequantised values and bits/dim follow from
:mod:`genlab.metrics.likelihood`. Samples are dequantised values (continuous), in data units.

**Class-conditional flows** (``conditional=true``) model :math:`p(x \mid y)` with the data's
labels as ``context=``: the one-hot label :math:`y` enters every conditioner (extra inputs of
the coupling, spline and MADE networks, constant planes of conv conditioners; see
:mod:`genlab.nn.flows`), so each label has its own bijection :math:`f(\cdot\,; y)` and

.. math::
    \log p(x \mid y) = \log \mathcal N(f(x; y); 0, I) + \log |\det \partial f(x; y) /
    \partial x|,

exact, as zuko's conditional flows ``flow(c).log_prob(x)``. ActNorm, linear and the
pre-transform do not depend on the label.

**Conditional sampling** (:meth:`Flow.sample_conditional`) is MCMC on the unobserved
coordinates with the exact density and an accept/reject step, so the chains target the model's
own conditional :math:`p(x_u \mid x_o) \propto p(x_o, x_u)` exactly (at stationarity); see the
method for the proposal, and :mod:`genlab.samplers.density`.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    arXiv:1605.08803.
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    arXiv:1906.04032.
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation",
    NeurIPS 2017, arXiv:1705.07057.
    Kingma & Dhariwal, "Glow", NeurIPS 2018, arXiv:1807.03039.
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models", ICLR 2016,
    arXiv:1511.01844 (dequantisation).
    Roberts & Tweedie, "Exponential convergence of Langevin distributions and their discrete
    approximations", Bernoulli 2(4), 1996 (MALA).
    Winkler, Worrall, Hoogeboom & Welling, "Learning Likelihoods with Conditional Normalizing
    Flows", 2019, arXiv:1912.00042 (conditional flows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import Tensor

from genlab.config import check
from genlab.data.dataset import DataInfo, dequantize, is_large_image
from genlab.models.base import Capabilities, GenerativeModel
from genlab.models.code_prior import CODE_PRIORS, CodePrior, MixtureCodePrior
from genlab.nn import ACTIVATIONS, Activation, AffineNormalizer
from genlab.nn.averaging import AveragedCopies
from genlab.nn.flows import (
    ActNorm,
    AffineCoupling,
    Bijection,
    Chain,
    InvertibleLinear,
    Logit,
    MaskedAffineAutoregressive,
    SplineCoupling,
    Squeezed,
    Standardize,
    coupling_conditioner,
)
from genlab.nn.mixture_prior import COVARIANCES, Covariance
from genlab.objectives import log_standard_normal
from genlab.samplers import ExplicitDensity, LatentGenerator, complete_from_density

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

FlowTransform = Literal["realnvp", "maf", "spline"]
FLOW_TRANSFORMS: tuple[str, ...] = get_args(FlowTransform)
Conditioner = Literal["auto", "mlp", "conv"]
CONDITIONERS: tuple[str, ...] = get_args(Conditioner)
INIT_EXAMPLES = 2048  # examples used for the data-dependent ActNorm initialisation
GAUSSIAN_FIT_SAMPLES = 2048  # model samples behind the Gaussian that shapes the MCMC proposals
EDGE_MARGIN = 0.05  # the MCMC Gaussian sees samples past the logit's edge at 95% of it
AUTO_LEVELS = 3  # the most scales levels="auto" builds (28x28 -> 14x14 -> 7x7)
EVAL_CHUNK = 8192  # examples per pass when the MCMC scores many candidates without gradients
FIT_CHUNK = 512  # training examples per pass when the mixture base reads their codes
FULL_COVARIANCE_DIMS = 64  # the most codes whose mixture base has full covariances


@dataclass(frozen=True)
class FlowConfig:
    """Attributes:
    transform: ``"realnvp"`` (affine couplings), ``"maf"`` (masked autoregressive) or
        ``"spline"`` (rational-quadratic spline couplings, on flattened data).
    n_layers: number of couplings / autoregressive layers (at each level, with ``levels``).
    hidden: hidden sizes of the MLP / MADE conditioners.
    activation: non-linearity of the conditioners.
    conditioner: ``"mlp"`` or ``"conv"`` (images, realnvp); ``"auto"``: conv for images.
    channels: hidden channels of the conv conditioner.
    levels: scales of a conv flow (RealNVP's and Glow's multi-scale architecture): level 0
        runs ``n_layers`` couplings with checkerboard masks on the image, each level
        :math:`l > 0` another ``n_layers`` with channel masks on the image squeezed :math:`l`
        times (2x2 space-to-depth, :class:`~genlab.nn.flows.Squeezed`), where the 3x3 convolutions
        see :math:`2^l` times as far. Needs conv conditioners and sides divisible by
        :math:`2^{levels - 1}`. ``"auto"``: on images of side 16 and more with conv
        conditioners, as many levels (up to 3: 28x28 -> 14x14 -> 7x7) as the sides halve
        evenly; else 1.
    actnorm: an ActNorm layer before each coupling / autoregressive layer; ``None``: on
        images, off for vectors (standardised already; on two moons ActNorm cost 0.008 nats of
        validation log-likelihood after 3,000 steps, mean of 3 seeds).
    linear: an invertible linear (1x1 on images) layer before each coupling / MAF layer.
    random_masks: vectors: a random half mask per layer (drawn at initialisation, so seeded)
        instead of alternating parity masks.
    logit: the logit pre-transform on the dequantised support; ``None``: on for discrete data
        (it needs bounded data, so it is refused for continuous data).
    logit_alpha: the logit's :math:`\\alpha` (keeps the support's edges finite).
    scale_bound: bound :math:`c` of the soft-clamped log-scales.
    n_bins: bins of each spline (``spline``).
    spline_bound: the splines act on :math:`[-B, B]` and are the identity outside.
    conditional: model :math:`p(x \\mid y)` with the data's class labels as ``context=``
        (a conditional flow: the one-hot label enters every conditioner).
    ema_decay: decay :math:`\\beta` of the average of the layers' weights that is the model
        (:mod:`genlab.nn.averaging`; 0: the last weights).
    prior: the base distribution: ``"normal"`` (:math:`\\mathcal N(0, I)`) or ``"mixture"``:
        after training, a Gaussian mixture fitted to the training data's codes (see module).
    prior_components: components of the ``"mixture"`` base.
    prior_covariance: the mixture's covariances, ``"full"`` or ``"diag"``; ``"auto"``: full
        for up to 64 codes, diagonal beyond.
    attention_side: conv conditioners on grids of at most this side get a residual
        self-attention layer after their first convolution
        (:class:`~genlab.nn.denoisers.SelfAttention2d`, as Flow++'s conditioners): every
        position of the grid reads every other, where three convolutions see 5x5. 0: none. Its
        cost grows with the square of the positions: on 28x28 digits, 7 (the 7x7 level's 49
        positions) adds 30% to a training step (one thread, a batch of 16), 14 over 200%.
    """

    transform: FlowTransform = "realnvp"
    n_layers: int = 8
    hidden: tuple[int, ...] = (64, 64)
    activation: Activation = "relu"
    conditioner: Conditioner = "auto"
    channels: int = 32
    levels: int | Literal["auto"] = 1
    actnorm: bool | None = None
    linear: bool = False
    random_masks: bool = False
    logit: bool | None = None
    logit_alpha: float = 0.01
    scale_bound: float = 3.0
    n_bins: int = 8
    spline_bound: float = 4.0
    conditional: bool = False
    ema_decay: float = 0.995
    prior: CodePrior = "normal"
    prior_components: int = 10
    prior_covariance: Covariance | Literal["auto"] = "auto"
    attention_side: int = 0

    def __post_init__(self) -> None:
        check(
            self.transform in FLOW_TRANSFORMS,
            f"transform must be one of {FLOW_TRANSFORMS}, got {self.transform!r}",
        )
        check(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(
            self.conditioner in CONDITIONERS,
            f"conditioner must be one of {CONDITIONERS}, got {self.conditioner!r}",
        )
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(
            self.levels == "auto" or (isinstance(self.levels, int) and self.levels >= 1),
            f"levels must be an integer >= 1 or auto, got {self.levels!r}",
        )
        check(
            0 < self.logit_alpha < 0.5, f"logit_alpha must be in (0, 0.5), got {self.logit_alpha}"
        )
        check(self.scale_bound > 0, f"scale_bound must be positive, got {self.scale_bound}")
        check(self.n_bins >= 2, f"n_bins must be >= 2, got {self.n_bins}")
        check(self.spline_bound > 0, f"spline_bound must be positive, got {self.spline_bound}")
        check(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        check(self.prior in CODE_PRIORS, f"prior must be one of {CODE_PRIORS}, got {self.prior!r}")
        check(self.prior_components >= 1, "prior_components must be >= 1")
        check(self.attention_side >= 0, f"attention_side must be >= 0, got {self.attention_side}")
        check(
            self.prior_covariance in ("auto", *COVARIANCES),
            f"prior_covariance must be auto, full or diag, got {self.prior_covariance!r}",
        )


class Flow(MixtureCodePrior, GenerativeModel):
    """RealNVP / MAF normalizing flow; transforms map data x -> latent z (see module docstring)."""

    family = "flow"
    capabilities = Capabilities(
        sample=True,
        log_prob="exact",
        encode=True,
        decode=True,
        conditional="mcmc",
        posterior="mcmc",
        context=True,
    )
    description = "RealNVP / MAF / neural spline flow"
    task_notes = {
        "generation": "inverse transform; `prior=mixture`: codes from a mixture fitted after "
        "training",
        "representation": "z = f(x), bijective: `decode` inverts",
        "conditional": "SIR + MALA on the unobserved coordinates with the exact density",
        "posterior": "SIR + MALA on z, through the exact inverse",
        "context": "with `conditional=true`: labels into every conditioner",
    }
    config_class = FlowConfig
    default_train = {"epochs": 1000, "batch_size": 256, "lr": 1e-3, "patience": 50}
    budgets = {
        "smoke": {"steps": 40, "n_layers": 2, "hidden": (16,), "channels": 8},
        # MLP conditioners: on 8x8 images 12x faster per step than conv ones, and better bits/dim
        "fast": {"epochs": 200, "patience": 20, "conditioner": "mlp", "hidden": (256, 256)},
        "full": {"epochs": 2000, "patience": 30},
    }
    # 28x28 digits, seed 0, fast: three levels of conv couplings (28 -> 14 -> 7, 4 each, 32
    # channels), 20 epochs of batch 16 in 12 minutes (one thread) reached 1.30 bits/dim on
    # validation where the MLP conditioners of the 8x8 settings stop near 2.04; batch 32, 64 and
    # 256 reached 1.35, 1.43 and 1.59 in the same epochs (the steps cost about the same per image).
    # full: the same flow three times as long (64 channels were 44 nats an image better after 5
    # epochs, at about twice the time an epoch: level with 32 channels in time at that point).
    # fast at lr 2e-3 (at 1e-3 the bound still fell 2 nats an epoch at epoch 20): 1.259 +- 0.006
    # bits/dim over three seeds against 1.287 +- 0.001, 0.630 confident against 0.619
    # the mixture base (2026-12-05, three seeds): 0.748 +- 0.017 confident against 0.630, FID 410
    # against 1,035, 1.254 bits/dim against 1.259 (the same layers)
    large_image_budgets = {
        budget: {
            "conditioner": "conv",
            "levels": "auto",
            "linear": True,
            "prior": "mixture",
            **settings,
        }
        for budget, settings in {
            None: {},
            "smoke": {"batch_size": 64},  # a smoke compare trained it 17 s at 256, 4.6 s at 64
            "fast": {"epochs": 20, "batch_size": 16, "channels": 32, "n_layers": 4, "lr": 2e-3},
            "full": {"epochs": 60, "batch_size": 16, "channels": 32, "n_layers": 4},
        }.items()
    }

    def __init__(self, config: FlowConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        use_logit = config.logit if config.logit is not None else info.levels is not None
        check(
            not use_logit or info.levels is not None,
            "flow: the logit pre-transform needs bounded (discrete-level) data",
        )
        conditioner = config.conditioner
        if conditioner == "auto":
            conditioner = (
                "conv" if info.kind == "image" and config.transform == "realnvp" else "mlp"
            )
        check(
            conditioner == "mlp" or (info.kind == "image" and config.transform == "realnvp"),
            "flow: conditioner=conv needs image data and transform=realnvp",
        )
        check(
            config.attention_side == 0 or conditioner == "conv",
            f"flow: attention_side={config.attention_side} attends in conv conditioners: it "
            f"needs conditioner=conv (images, transform=realnvp), got {conditioner}",
        )
        sides = info.event_shape[1:]
        self.levels = config.levels
        if self.levels == "auto":
            self.levels = 1
            if conditioner == "conv" and is_large_image(info):
                while self.levels < AUTO_LEVELS and all(s % 2**self.levels == 0 for s in sides):
                    self.levels += 1
        factor = 2 ** (self.levels - 1)
        check(
            self.levels == 1 or (conditioner == "conv" and all(s % factor == 0 for s in sides)),
            f"flow: levels={self.levels} squeezes the image {self.levels - 1} times by 2x2: it "
            f"needs conditioner=conv and image sides divisible by {factor}, got "
            f"conditioner={conditioner} and shape {info.event_shape}; lower levels",
        )
        self.record_decisions(
            conditioner=conditioner, levels=self.levels, logit=use_logit,
            actnorm=self.uses_actnorm,
        )  # fmt: skip
        # the layers see images as (C, H, W) with conv conditioners, else flattened vectors
        self.layer_shape = info.event_shape if conditioner == "conv" else (info.n_features,)
        self.latent_dim = info.n_features
        self.use_labels(config.conditional)
        if use_logit:
            low, high = info.value_range
            half = info.level_step / 2
            self.pre: Bijection = Logit(low - half, high + half, config.logit_alpha)
        else:
            self.pre = Standardize(
                AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
            )
        self.layers = Chain(self._build_layers(config))
        self.averaged = AveragedCopies({"layers": self.layers})
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        covariance = config.prior_covariance
        if covariance == "auto":  # a full covariance has D (D + 1) / 2 numbers
            covariance = "full" if self.latent_dim <= FULL_COVARIANCE_DIMS else "diag"
        if config.prior == "mixture":
            self.record_decisions(prior_covariance=covariance)
        self.build_code_prior(config.prior, config.prior_components, covariance)

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A flow saved before its weights were averaged: the average starts as its layers."""
        upgraded = dict(state)
        for key, value in state.items():
            if key.startswith("layers."):
                upgraded.setdefault("averaged." + key, value)
        upgraded.setdefault("steps", torch.zeros((), dtype=torch.long))
        return upgraded

    @property
    def model_layers(self) -> Chain:
        """The layers of the model: the average of the trained weights (``ema_decay``)."""
        return self.averaged["layers"]

    @property
    def uses_actnorm(self) -> bool:
        """Whether an ActNorm layer precedes each layer (``actnorm``; ``None``: on images)."""
        actnorm = self.config.actnorm
        return actnorm if actnorm is not None else self.info.kind == "image"

    def _build_layers(self, config: FlowConfig) -> list[Bijection]:
        return self._scale_layers(config, self.layer_shape, self.levels)

    def _scale_layers(
        self, config: FlowConfig, shape: tuple[int, ...], levels: int
    ) -> list[Bijection]:
        """``n_layers`` layers on inputs of ``shape``, then the next ``levels - 1`` scales'
        inside a :class:`~genlab.nn.flows.Squeezed`. Images: checkerboard masks at full
        resolution, channel halves on squeezed levels."""
        channels, spatial = shape[0], len(shape) - 1
        squeezed = shape != self.layer_shape
        d = self.info.n_features
        layers: list[Bijection] = []
        order = torch.arange(1, d + 1)
        use_actnorm = self.uses_actnorm
        for i in range(config.n_layers):
            # vectors: alternating parity masks, or a fresh random half per layer (seeded init)
            half = torch.randperm(d) if config.random_masks else torch.arange(d)
            mask = half % 2 == i % 2
            if use_actnorm:
                layers.append(ActNorm(channels, spatial))
            if config.linear and channels > 1:
                layers.append(InvertibleLinear(channels))
            if config.transform == "spline":
                layers.append(
                    SplineCoupling(
                        mask,
                        config.hidden,
                        config.n_bins,
                        config.spline_bound,
                        config.activation,
                        context_features=self.n_classes,
                    )
                )
                continue
            if config.transform == "maf":
                layers.append(
                    MaskedAffineAutoregressive(
                        order if i % 2 == 0 else order.flip(0),
                        config.hidden,
                        config.activation,
                        config.scale_bound,
                        context_features=self.n_classes,
                    )
                )
                continue
            if squeezed:  # alternate halves of the channels
                first = torch.arange(channels) < channels // 2
                mask = (first ^ (i % 2 == 1))[:, None, None].expand(shape)
            elif spatial:  # checkerboard masks on images
                h, w = shape[1:]
                board = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == i % 2
                mask = board.expand(shape)
            net = coupling_conditioner(
                shape,
                config.hidden,
                config.channels,
                config.activation,
                context_features=self.n_classes,
                attention=spatial > 0 and max(shape[1:]) <= config.attention_side,
            )
            layers.append(AffineCoupling(mask, net, config.scale_bound))
        if levels > 1:
            inner = (channels * 4, shape[1] // 2, shape[2] // 2)
            layers.append(Squeezed(Chain(self._scale_layers(config, inner, levels - 1))))
        return layers

    # ------------------------------------------------------------------ training hooks

    @torch.no_grad()
    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        """Fit the standardiser and initialise every ActNorm from (a subset of) the data.

        Discrete data is dequantised (with a fixed seed) as the trainer does, so that constant
        pixels do not give ActNorm a zero scale. A conditional flow's layers see the examples'
        labels (``context``).
        """
        if isinstance(self.pre, Standardize):
            self.pre.normalizer.fit(x_train)
        generator = torch.Generator(device=x_train.device).manual_seed(0)
        x = dequantize(x_train[:INIT_EXAMPLES], self.info, generator)
        h = self.pre(x)[0].reshape(-1, *self.layer_shape)
        self.layers.initialize(
            h, self.one_hot_labels(None if context is None else context[:INIT_EXAMPLES])
        )
        self.averaged.reset_({"layers": self.layers})

    @torch.no_grad()
    def finish_training(
        self, x_train: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> None:
        """``prior="mixture"``: fit the mixture to the codes :math:`z_i = f(\\tilde x_i)` of the
        training data, dequantised once with ``generator`` as the trainer does (given each
        example's label, a conditional flow)."""
        if self.prior is None:
            return
        labels = self.one_hot_labels(context)
        codes = []
        for rows in torch.arange(len(x_train), device=x_train.device).split(FIT_CHUNK):
            x = dequantize(x_train[rows], self.info, generator)
            codes.append(self.transform(x, None if labels is None else labels[rows])[0])
        self.fit_code_prior(torch.cat(codes), generator)

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        # the layers train under N(0, I), the base a fitted mixture replaces after training
        z, log_det = self.transform(x, self.one_hot_labels(context), self.layers)
        loss = -(log_standard_normal(z) + log_det).mean()
        optimizers.minimize(loss)
        self.steps += 1
        self.averaged.update_({"layers": self.layers}, int(self.steps), self.config.ema_decay)
        return {"loss": loss.detach()}

    # ------------------------------------------------------------------ the four tasks

    def transform(
        self, x: Tensor, labels: Tensor | None = None, layers: Chain | None = None
    ) -> tuple[Tensor, Tensor]:
        """``x -> (z, log|det dz/dx|)``: ``(B, D)`` latents and ``(B,)`` log-Jacobians.

        ``labels``: ``(B, C)`` one-hot rows of a conditional flow (:meth:`one_hot_labels`);
        ``layers``: the trained ones (the training step), by default the model's averaged ones.
        """
        h, log_det = self.pre(x)
        layers = self.model_layers if layers is None else layers
        z, log_det_layers = layers(h.reshape(-1, *self.layer_shape), labels)
        return z.reshape(len(x), -1), log_det + log_det_layers

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B,)`` exact :math:`\\log p(x)` (:math:`\\log p(x \\mid y)` given the labels
        ``context`` of a conditional flow) in nats, a density in data units.

        With the logit pre-transform the support is the dequantised range: outside it the
        density is 0 (``-inf``).
        """
        self.check_input(x, context=context)
        z, log_det = self.transform(x, self.one_hot_labels(context))
        log_p = self.log_prior(z) + log_det
        if isinstance(self.pre, Logit):
            outside = ((x < self.pre.low) | (x > self.pre.low + self.pre.width)).flatten(1).any(1)
            log_p = log_p.masked_fill(outside, -math.inf)
        return log_p

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, D)`` the latent :math:`z = f(x)` (data x -> latent z)."""
        self.check_input(x, context=context)
        return self.transform(x, self.one_hot_labels(context))[0]

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, *event_shape)`` the data :math:`x = f^{-1}(z)` (the inverse direction)."""
        self.check_context(context, len(z))
        return self._decode(z, self.one_hot_labels(context))

    def _decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.model_layers.inverse(z.reshape(-1, *self.layer_shape), labels)
        return self.pre.inverse(h.reshape(-1, *self.info.event_shape))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """``(n, *event_shape)``: :math:`x = f^{-1}(z)`, :math:`z` from the base,
        :math:`\\mathcal N(0, I)` or the fitted mixture (:math:`x = f^{-1}(z; y)` given the labels
        ``context``, ``(n,)``, of a conditional flow).

        ``temperature`` :math:`T \\ne 1` scales the draws' deviation from the base's mean (from
        their component's mean under a mixture) by :math:`T`: :math:`z \\sim \\mathcal N(0, T^2 I)`,
        Glow's reduced-temperature sampling (Kingma & Dhariwal, 2018), which trades diversity for
        cleaner images at :math:`T < 1`. Those are not draws from the model's density
        (:meth:`log_prob` is always at :math:`T = 1`).
        """
        check(temperature > 0, f"flow: temperature must be positive, got {temperature}")
        self.check_context(context, n)
        if self.prior is not None:
            z = self.prior.sample(n, generator, temperature)
        else:
            z = temperature * self.draw_codes(n, generator)
        return self._decode(z, self.one_hot_labels(context)).float()

    # ------------------------------------------------------------------ conditional sampling

    def _log_prob_pre(self, h: Tensor, labels: Tensor | None = None) -> Tensor:
        """``(B,)`` log-density of pre-transformed values ``h = f_0(x)``, ``(B, D)``, given the
        ``(B, C)`` one-hot ``labels`` of a conditional flow.

        ``-inf`` where :math:`x = f_0^{-1}(h)` leaves the logit's support, as in :meth:`log_prob`.
        Without gradients it runs in chunks, so that scoring many candidates stays in memory.
        """
        if not torch.is_grad_enabled() and len(h) > EVAL_CHUNK:
            chunks = h.split(EVAL_CHUNK)
            label_chunks = [None] * len(chunks) if labels is None else labels.split(EVAL_CHUNK)
            return torch.cat(
                [self._log_prob_pre(c, y) for c, y in zip(chunks, label_chunks, strict=True)]
            )
        z, log_det = self.model_layers(h.view(-1, *self.layer_shape), labels)
        log_p = self.log_prior(z.flatten(1)) + log_det
        return log_p.masked_fill(~self._in_support(h).all(1), -math.inf)

    def _support_edge(self) -> float | None:
        """:math:`c = \\operatorname{logit}(1 - \\alpha)`: the logit maps the support onto
        :math:`(-c, c)`; ``None`` for standardised data (the whole line)."""
        if isinstance(self.pre, Logit):
            return math.log((1 - self.pre.alpha) / self.pre.alpha)
        return None

    def _in_support(self, h: Tensor) -> Tensor:
        """Elementwise: whether pre-transformed values are finite and map into the support."""
        edge = self._support_edge()
        return torch.isfinite(h) if edge is None else h.abs() <= edge

    def _to_chain(self, h: Tensor) -> Tensor:
        r"""The MCMC's coordinates :math:`v = \operatorname{atanh}(h / c)` of pre-transformed
        values: the support's :math:`(-c, c)` onto the whole line, so that no proposal leaves
        it (not finite outside); the identity for standardised data."""
        edge = self._support_edge()
        return h if edge is None else torch.atanh(h / edge)

    def _from_chain(self, v: Tensor) -> Tensor:
        """:math:`h = c \\tanh(v)`, the inverse of :meth:`_to_chain`."""
        edge = self._support_edge()
        return v if edge is None else edge * torch.tanh(v)

    def _chain_log_jacobian(self, v: Tensor) -> Tensor:
        r"""``(B,)`` :math:`\log |\det \partial h / \partial v| = \sum_d \log c +
        \log(1 - \tanh^2 v_d)`, with :math:`\log(1 - \tanh^2 v) = 2(\log 2 - |v| -
        \operatorname{softplus}(-2|v|))` (stable for large :math:`|v|`); 0 without a logit."""
        edge = self._support_edge()
        if edge is None:
            return v.new_zeros(len(v))
        a = v.abs()
        log_sech2 = 2 * (math.log(2) - a - torch.nn.functional.softplus(-2 * a))
        return (math.log(edge) + log_sech2).sum(1)

    @torch.no_grad()
    def _pre_gaussian(
        self, generator: torch.Generator | None, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of the model's own samples in the
        MCMC's coordinates :math:`v` (:meth:`_to_chain`), samples near the support's edge or past
        it counted at ``1 - EDGE_MARGIN`` of it (the Gaussian only shapes the proposals: on 8x8
        digits, counted at the edge itself, their huge :math:`|v|` so widened the whitening that
        60 MALA steps were far from mixed, completion accuracy 0.61 against 0.76 after 300;
        at 0.95 of it 0.78-0.80 with either).

        Given ``(B, C)`` one-hot ``labels``, the samples cycle through them: the Gaussian then
        approximates the mixture of those labels' conditionals.
        """
        device = next(self.parameters()).device
        z = self.draw_codes(GAUSSIAN_FIT_SAMPLES, generator)
        if labels is not None:
            labels = labels[torch.arange(GAUSSIAN_FIT_SAMPLES, device=labels.device) % len(labels)]
        h = self.model_layers.inverse(z.view(-1, *self.layer_shape), labels).flatten(1).double()
        h = h[torch.isfinite(h).all(1)]
        edge = self._support_edge()
        if edge is not None:
            h = h.clamp(-edge * (1 - EDGE_MARGIN), edge * (1 - EDGE_MARGIN))
        v = self._to_chain(h)
        eye = torch.eye(v.shape[1], dtype=v.dtype, device=device)
        return v.mean(0), torch.cov(v.T) + 1e-6 * eye

    def latent_generator(self, context: Tensor | None = None) -> LatentGenerator:
        """The inverse transform :math:`x = f^{-1}(z)` (:math:`f^{-1}(z; y_b)` given each row's
        label): exact, so the posterior is the flow's own."""
        labels = self.one_hot_labels(context)

        def generate(z: Tensor, rows: Tensor) -> Tensor:
            return self._decode(z, None if labels is None else labels[rows.to(labels.device)])

        return LatentGenerator(
            self.latent_dim, generate, next(self.parameters()).device, log_prior=self.log_prior
        )

    def explicit_density(
        self, mean: Tensor, cov: Tensor, context: Tensor | None = None
    ) -> ExplicitDensity:
        """The pieces :func:`~genlab.samplers.complete_from_density` needs: chains on
        :math:`v = \\operatorname{atanh}(f_0(x) / c)` (:meth:`_to_chain`), whose density is
        :math:`p(h(v)) |\\det \\partial h / \\partial v|`, given each chain's label
        ``context`` (a conditional flow).

        Arguments:
            mean, cov: ``(D,)``, ``(D, D)`` the Gaussian approximation of ``v`` that shapes
                the proposals (:meth:`sample_conditional` fits it to the model's own samples).
            context: ``(chains,)`` labels, or ``None``.
        """
        shape, labels = self.info.event_shape, self.one_hot_labels(context)

        def log_density(v: Tensor) -> Tensor:  # (chains * S, D), a chain's rows adjacent
            rows = None if labels is None else labels.repeat_interleave(len(v) // len(labels), 0)
            return self._log_prob_pre(self._from_chain(v), rows) + self._chain_log_jacobian(v)

        return ExplicitDensity(
            family=self.family,
            transform=lambda x: self._to_chain(self.pre(x.reshape(-1, *shape))[0].flatten(1)),
            inverse=lambda v: self.pre.inverse(self._from_chain(v).view(-1, *shape)).flatten(1),
            log_density=log_density,
            in_support=torch.isfinite,
            mean=mean,
            cov=cov,
        )

    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        n_candidates: int = 32,
        steps: int = 60,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, batch, *event_shape)`` draws of :math:`x_u \sim p(x_u \mid x_o)` by SIR + MALA.

        The chains run on the unobserved coordinates of :math:`v = \operatorname{atanh}(h / c)`,
        :math:`h = f_0(x)` the pre-transform, :math:`c = \operatorname{logit}(1 - \alpha)` the
        edge of the logit's range (:math:`v = h` for standardised data), both elementwise:
        :math:`v_u \mid v_o` has the density :math:`\propto \mathcal N(f(h); 0, I)\,|\det
        \partial f / \partial h|\,|\det \partial h / \partial v|` on the whole real line, so no
        proposal leaves the support (on chains in :math:`h` a Gaussian proposal over hundreds of
        background pixels near the edge fell outside it in every candidate: 28x28 digits). Each
        chain starts by sampling-importance-resampling from the Gaussian conditional of
        :math:`v_u` given :math:`v_o` under a Gaussian fitted to 2,048 of the model's own samples (drawn with
        ``generator``; given the labels ``context`` of a conditional flow, samples of those
        labels), then runs ``steps`` MALA transitions whitened by it
        (:func:`~genlab.samplers.complete_from_density` has the details). A conditional flow's
        chains target :math:`p(x_u \\mid x_o, y)` with each example's label.

        Assumptions: the accept/reject step makes the model's conditional the exact stationary
        distribution whatever the Gaussian, but a chain of finite length is only approximately
        mixed, the more so in high dimension and between separated modes (which only SIR can
        weigh): the defaults are cheap ones for completing images (32 unobserved pixels of
        digits); raise ``steps`` for more accuracy. Discrete data: the model is a density on
        dequantised values, so this conditions on :math:`\tilde x_o = x_o` (each observed
        level at its bin's centre) and returns continuous values in the dequantised range.

        Arguments:
            x: ``(batch, *event_shape)``; only observed coordinates are read.
            mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
            n: completions per example (independent chains).
            n_candidates: SIR candidates per chain.
            steps: MALA transitions per chain; the first half adapt the step size.

        References:
            Rubin, "Using the SIR algorithm to simulate posterior distributions", 1988.
            Roberts & Tweedie, Bernoulli 2(4), 1996 (MALA).
        """
        self.check_input(x, context=context)
        mean, cov = self._pre_gaussian(generator, self.one_hot_labels(context))
        return complete_from_density(
            lambda chains: self.explicit_density(mean, cov, chains),
            x,
            mask,
            n,
            n_candidates=n_candidates,
            steps=steps,
            generator=generator,
            context=context,
        )
