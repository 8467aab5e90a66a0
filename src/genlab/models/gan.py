r"""Generative adversarial networks: a generator :math:`G` against a discriminator (critic) :math:`D`.

:math:`G` maps :math:`z \sim \mathcal N(0, I_k)` to data; :math:`D` is trained to tell data from
samples (a learned two-sample test statistic) and :math:`G` to fool it. Each training step makes
``d_steps`` discriminator updates, each on its own slice of the batch and fresh :math:`z`, then
one generator update. The game (``loss``) is one of :data:`~genlab.objectives.GAN_LOSSES`, whose
formulas are in :mod:`genlab.objectives.adversarial`.

The defaults (``loss="nonsaturating"``) are the configuration measured on the mode-coverage
benchmark (README; ``scripts/mode_coverage.py``): 4x128 LeakyReLU MLPs, :math:`k` = the data's
dimension (at most 16), Adam(0, 0.99) at lr :math:`2\cdot10^{-3}` decayed linearly to 0, an R1
penalty :math:`\gamma = 1` applied every 4 steps, batches of 256, 20,000 steps, and an EMA of
the generator (decay 0.999). ``minimax`` and ``hinge`` keep these settings; the Wasserstein
losses bring their paper's recipe unless it is overridden (:data:`LOSS_RECIPES`, the
``recipe`` layer of :mod:`genlab.settings`):

- ``wasserstein``: weight clipping :math:`c = 0.01`, RMSProp, constant lr
  :math:`5\cdot10^{-5}`, 5 critic steps per generator step, no R1 (Arjovsky et al., 2017,
  Algorithm 1);
- ``wasserstein-gp``: gradient penalty :math:`\lambda = 10`, Adam(0.5, 0.9), constant lr
  :math:`10^{-4}`, 5 critic steps, no R1 (Gulrajani et al., 2017, Algorithm 1).

Any loss can add spectral normalisation of :math:`D` (``spectral_norm``). The generator's weights
are averaged (an EMA, ``ema_decay``; :mod:`genlab.nn.averaging`) and the *averaged* generator
is the model: ``sample`` and ``decode`` use it. The averaged weights are part of the state dict,
so checkpoints carry them.

Networks: MLPs for vectors; for images (``architecture="auto"`` or ``"conv"``) DCGAN-style
convolutional ones: :math:`D` halves the resolution with strided convolutions and LeakyReLU,
:math:`G` retraces it (:class:`~genlab.nn.ConvDecoder`) and ends in ``tanh``, on images scaled
to :math:`[-1, 1]`, or without squashing (``image_output="linear"``, the 28x28 settings: a tanh
generator saturated at the background of MNIST digits within 60 steps on one seed in three, and
on seed 0 too without a validation split, and never returned; samples are then clipped to the
value range). Vectors are standardised per feature.

Each step logs the diagnostics that explain a run (``metrics.jsonl``, plotted in
``curves.png``): ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (mean :math:`D(x)` and
:math:`D(G(z))`: probabilities for the probability losses, critic values otherwise),
``wasserstein_estimate`` (:math:`\mathbb E f(x) - \mathbb E f(G(z))`, the critic's estimate of
:math:`W_1` in normalised units when the critic is 1-Lipschitz; just the gap of raw outputs
otherwise), ``d_grad_norm`` and ``g_grad_norm`` (gradient norms of both players), and the
penalties in use. Each validation logs ``d_real_val``, the mean :math:`D` on held-out data
(a memorisation check against ``d_real``), and on the 2-D mixtures ``modes_captured``,
``hq_fraction`` and ``mode_kl`` of 2,500 samples (:mod:`genlab.stats.modes`). GANs have no
held-out loss, so no selection happens: the last weights are kept.

**Class-conditional GANs** (``conditional=true``) model :math:`p(x \mid y)` with the data's
labels as ``context=``: the generator takes :math:`[z, e_y]` (the noise and the one-hot label,
Mirza & Osindero, 2014) and the discriminator is a projection discriminator
:math:`D(x, y) = \psi(\phi(x)) + \langle V e_y, \phi(x) \rangle`
(:class:`~genlab.nn.ProjectionDiscriminator`, Miyato & Koyama, 2018), with :math:`\phi` the
unconditional discriminator's network up to its last hidden layer. Each update's generated
data takes the labels of its real data, so both sides show the discriminator the data's label
frequencies. Every game, penalty and the averaging work unchanged: the penalties (R1, the
gradient penalty) differentiate :math:`D` in :math:`x` with :math:`y` fixed, and the averaged
generator is the model.

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, arXiv:1406.2661.
    Radford, Metz & Chintala, "DCGAN", ICLR 2016, arXiv:1511.06434.
    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017, arXiv:1701.07875.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028.
    Miyato et al., "Spectral Normalization for GANs", ICLR 2018, arXiv:1802.05957.
    Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually Converge?",
    ICML 2018, arXiv:1801.04406 (R1).
    Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019,
    arXiv:1806.04498.
    Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014, arXiv:1411.1784.
    Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018, arXiv:1802.05637.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import DataError
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import (
    ACTIVATIONS,
    Activation,
    AffineNormalizer,
    ProjectionDiscriminator,
    append_context,
    build_decoder,
    build_encoder,
)
from genlab.nn.averaging import AveragedCopies
from genlab.objectives.adversarial import (
    ADVERSARIAL_LOSSES,
    GAN_LOSSES,
    GANLoss,
    clip_weights_,
    gradient_penalty,
    interpolate,
    r1_penalty,
)
from genlab.optim import adam
from genlab.samplers import LatentGenerator, LatentVariableModel, complete_from_latent
from genlab.stats.modes import N_SAMPLES, mode_coverage_for

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig
    from genlab.train.optim import Optimizers

Architecture = Literal["auto", "mlp", "conv"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
MAX_AUTO_LATENT = 16
OptimizerName = Literal["adam", "rmsprop"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
ImageOutput = Literal["tanh", "linear"]
IMAGE_OUTPUTS: tuple[str, ...] = get_args(ImageOutput)

# Each loss's paper recipe: the `recipe` settings layer, under the budget's and the user's.
LOSS_RECIPES: dict[str, dict[str, Any]] = {
    "minimax": {},
    "nonsaturating": {},
    "hinge": {},
    "wasserstein": {
        "optimizer": "rmsprop",
        "lr": 5e-5,
        "lr_schedule": "constant",
        "d_steps": 5,
        "clip": 0.01,
        "r1_weight": 0.0,
    },
    "wasserstein-gp": {
        "optimizer": "adam",
        "betas": (0.5, 0.9),
        "lr": 1e-4,
        "lr_schedule": "constant",
        "d_steps": 5,
        "gp_weight": 10.0,
        "r1_weight": 0.0,
    },
}


@dataclass(frozen=True)
class GANConfig:
    """Attributes:
    loss: the game (:data:`~genlab.objectives.GAN_LOSSES`); choosing it also picks its paper's
        optimiser settings unless they are set too (see the module docstring).
    latent_dim: size k of the noise :math:`z \\sim \\mathcal N(0, I_k)`; ``None``: the data's
        dimension, at most :data:`MAX_AUTO_LATENT` (2 on the 2-D mixtures).
    architecture: ``"mlp"``, ``"conv"`` (images only) or ``"auto"`` (conv for images).
    hidden: hidden sizes of the MLPs (generator and discriminator alike).
    activation: non-linearity of the MLPs and of the conv generator (the conv discriminator
        always uses LeakyReLU).
    channels: channels of the first conv layer (doubling at each halving).
    d_steps: discriminator updates per generator update (the batch is split among them).
    optimizer: ``"adam"`` or ``"rmsprop"``, for both players.
    betas: Adam's :math:`(\\beta_1, \\beta_2)`.
    d_lr_scale: the discriminator's learning rate is ``lr * d_lr_scale`` (two time-scales).
    clip: clamp every discriminator weight to ``[-clip, clip]`` after each update (WGAN).
    gp_weight: weight :math:`\\lambda` of the gradient penalty (WGAN-GP).
    r1_weight: weight :math:`\\gamma` of the R1 penalty :math:`\\frac\\gamma2 \\mathbb E
        \\lVert\\nabla D(x)\\rVert^2`.
    r1_every: apply R1 only every this many steps, with its weight multiplied by as much
        (lazy regularisation, Karras et al., 2020, arXiv:1912.04958).
    spectral_norm: spectrally normalise every discriminator layer.
    ema_decay: decay :math:`\\beta` of the generator's weight average (0 keeps no average).
    image_output: the generator's last layer on images: ``"tanh"`` onto :math:`[-1, 1]`, or
        ``"linear"`` (no squashing; samples are clipped to the value range). A tanh generator
        can saturate at the background of sparse images and never return (its gradient
        vanishes there): the 28x28 settings use ``"linear"``.
    conditional: model :math:`p(x \\mid y)` with the data's class labels as ``context=`` (a
        conditional GAN: the one-hot label joins the generator's input, and the discriminator
        is a projection discriminator; see the module docstring).
    """

    loss: GANLoss = "nonsaturating"
    latent_dim: int | None = None
    architecture: Architecture = "auto"
    hidden: tuple[int, ...] = (128, 128, 128, 128)
    activation: Activation = "leaky_relu"
    channels: int = 32
    d_steps: int = 1
    optimizer: OptimizerName = "adam"
    betas: tuple[float, float] = (0.0, 0.99)
    d_lr_scale: float = 1.0
    clip: float | None = None
    gp_weight: float = 0.0
    r1_weight: float = 1.0
    r1_every: int = 4
    spectral_norm: bool = False
    ema_decay: float = 0.999
    image_output: ImageOutput = "tanh"
    conditional: bool = False

    def __post_init__(self) -> None:
        check(self.loss in GAN_LOSSES, f"loss must be one of {GAN_LOSSES}, got {self.loss!r}")
        check(
            self.latent_dim is None or self.latent_dim >= 1,
            f"latent_dim must be >= 1, got {self.latent_dim}",
        )
        check(self.architecture in ARCHITECTURES, f"unknown architecture {self.architecture!r}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.d_steps >= 1, f"d_steps must be >= 1, got {self.d_steps}")
        check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"betas must be two numbers in [0, 1), got {self.betas}",
        )
        check(self.d_lr_scale > 0, f"d_lr_scale must be positive, got {self.d_lr_scale}")
        check(self.clip is None or self.clip > 0, f"clip must be positive, got {self.clip}")
        check(self.gp_weight >= 0, f"gp_weight must be >= 0, got {self.gp_weight}")
        check(self.r1_weight >= 0, f"r1_weight must be >= 0, got {self.r1_weight}")
        check(self.r1_every >= 1, f"r1_every must be >= 1, got {self.r1_every}")
        check(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        check(
            self.image_output in IMAGE_OUTPUTS,
            f"image_output must be one of {IMAGE_OUTPUTS}, got {self.image_output!r}",
        )


def spectral_norm_(module: nn.Module) -> nn.Module:
    """Spectrally normalise every linear and convolutional layer of ``module`` (Miyato et al., 2018)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def total_grad_norm(parameters: Sequence[Tensor]) -> Tensor:
    """L2 norm of the gradients currently held by ``parameters`` (0 when none has one)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return nn.utils.get_total_norm(grads).detach()


class GAN(GenerativeModel):
    """Generative adversarial network with an averaged generator (see module docstring)."""

    family = "gan"
    capabilities = Capabilities(
        sample=True,
        log_prob="none",
        encode=False,
        decode=True,
        conditional="mcmc",
        posterior="mcmc",
        context=True,
    )
    description = "minimax, non-saturating, Wasserstein with clipping or gradient penalty, hinge"
    task_notes = {
        "generation": "the averaged generator",
        "representation": "z → x",
        "conditional": (
            "under a stated Gaussian observation-noise model: z ~ p(z ∣ x_o) by SIR + MALA"
        ),
        "posterior": "SIR + MALA on z",
        "context": "with `conditional=true`: labels into the generator, projection discriminator",
    }
    config_class = GANConfig
    default_train = {
        "steps": 20_000,
        "batch_size": 256,
        "lr": 2e-3,
        "lr_schedule": "linear",
        "eval_every": 500,
    }
    recipe_option = "loss"
    recipes = LOSS_RECIPES
    budgets = {
        "smoke": {"steps": 40, "batch_size": 64, "hidden": (64, 64), "channels": 8},
        "fast": {"steps": 2_000, "architecture": "mlp"},  # on 8x8 images 14x faster than conv
        "full": {"steps": 20_000},
    }
    # 28x28 digits: a DCGAN-style conv pair, 8 channels, batches of 64: at fast 2,000 steps reach
    # domain FID 132 and 81% confidently classified samples on seed 0 where the MLP reaches 1,054
    # and 72%, but seed 2 collapses to blank images (README, scripts/quality_mnist.py); 32
    # channels at batch 256 take 30x longer a step
    large_image_budgets = {
        budget: {"architecture": "conv", "batch_size": 64, "image_output": "linear", **settings}
        for budget, settings in {
            None: {"channels": 8},
            "smoke": {"channels": 4},
            "fast": {"channels": 8, "steps": 5000},
            "full": {"channels": 8, "steps": 10_000},
        }.items()
    }

    def __init__(self, config: GANConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.latent_dim = config.latent_dim or min(info.n_features, MAX_AUTO_LATENT)
        check(
            config.architecture != "conv" or info.kind == "image",
            f"{self.family}: architecture=conv needs image data",
        )
        # the networks' kind: conv nets for images unless the config asks for MLPs
        self.architecture = (
            "conv" if info.kind == "image" and config.architecture != "mlp" else "mlp"
        )
        self.record_decisions(latent_dim=self.latent_dim, architecture=self.architecture)
        self.use_labels(config.conditional)
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
        self.generator_net = self.build_generator()
        self.discriminator = self.build_discriminator()
        if config.spectral_norm:
            spectral_norm_(self.discriminator)
        self.averaged = AveragedCopies({"generator": self.generator_net})
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # generator updates
        self.register_buffer("last_r1", torch.zeros(()))  # for logging between lazy R1 steps

    # ------------------------------------------------------------------ networks

    def build_generator(self) -> nn.Module:
        """:math:`z` ``(B, k)`` -> normalised data ``(B, *event_shape)`` (``tanh`` on images
        unless ``image_output="linear"``); a conditional GAN's takes :math:`[z, e_y]`,
        ``(B, k + n_classes)``."""
        cfg = self.config
        squash = self.info.kind == "image" and cfg.image_output == "tanh"
        return build_decoder(
            self.latent_dim + self.n_classes,
            self.info.event_shape,
            self.architecture,
            cfg.hidden,
            cfg.channels,
            cfg.activation,
            output_activation=nn.Tanh() if squash else None,
        )

    @property
    def conv(self) -> bool:
        return self.architecture == "conv"

    @property
    def data_activation(self) -> str:
        """The non-linearity of the discriminator's view of data (LeakyReLU for conv nets)."""
        return "leaky_relu" if self.conv else self.config.activation

    def data_features(self, out_features: int, hidden: tuple[int, ...] | None = None) -> nn.Module:
        """The discriminator's view of data: ``(B, *event_shape) -> (B, out_features)``, an MLP
        with the ``hidden`` layers (default the config's) or a conv net."""
        cfg = self.config
        return build_encoder(
            self.info.event_shape,
            out_features,
            self.architecture,
            cfg.hidden if hidden is None else hidden,
            cfg.channels,
            self.data_activation,
        )

    def build_discriminator(self) -> nn.Module:
        """Normalised data ``(B, *event_shape)`` -> ``(B, 1)`` outputs.

        A conditional GAN's also takes the one-hot labels: a
        :class:`~genlab.nn.ProjectionDiscriminator` whose features :math:`\\phi` are the
        unconditional network up to its last hidden layer (``hidden[-1]`` features, after the
        activation; a conv net's linear head maps to as many).
        """
        if not self.n_classes:
            return self.data_features(1)
        hidden = self.config.hidden
        n_features = hidden[-1] if hidden else self.info.n_features
        features = nn.Sequential(
            self.data_features(n_features, hidden[:-1]), ACTIVATIONS[self.data_activation]()
        )
        return ProjectionDiscriminator(features, n_features, self.n_classes)

    def generator_player(self) -> dict[str, nn.Module]:
        """The modules the generator's optimizer trains (and whose weights are averaged)."""
        return {"generator": self.generator_net}

    def critic(self, u: Tensor, labels: Tensor | None = None) -> Tensor:
        """``(B,)`` discriminator outputs on normalised data (and, for a conditional GAN, the
        ``(B, n_classes)`` one-hot labels: :math:`D(x, y)`)."""
        if labels is None:
            return self.discriminator(u).squeeze(-1)
        return self.discriminator(u, labels).squeeze(-1)

    def real_inputs(self, u: Tensor) -> tuple[Tensor, ...]:
        """The discriminator's arguments for a batch of (normalised) data."""
        return (u,)

    def fake_inputs(self, z: Tensor, labels: Tensor | None = None) -> tuple[Tensor, ...]:
        """The discriminator's arguments for generated data from noise ``z`` (given the one-hot
        ``labels`` of a conditional GAN)."""
        return (self.generator_net(append_context(z, labels)),)

    # ------------------------------------------------------------------ the model

    def latent(self, n: int, generator: torch.Generator | None) -> Tensor:
        """``(n, k)`` draws of :math:`z \\sim \\mathcal N(0, I_k)`."""
        device = self.normalizer.shift.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, *event_shape)`` data :math:`G(z)` of the averaged generator (:math:`G(z, y)`
        given the labels ``context`` of a conditional GAN)."""
        self.check_context(context, len(z))
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise DataError(
                f"{self.family}: codes have shape {tuple(z.shape)}, expected (batch, "
                f"{self.latent_dim})"
            )
        labels = self.one_hot_labels(context)
        u = self.averaged["generator"](append_context(z, labels))
        if self.info.kind == "image":  # a linear output may leave [-1, 1]: the value range
            u = u.clamp(-1.0, 1.0)
        return self.normalizer.inverse(u)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        self.check_context(context, n)
        return self.decode(self.latent(n, generator), context=context)

    # ------------------------------------------------------------------ conditional sampling

    def latent_proposal(self, u: Tensor) -> Tensor:
        """``(B, k)`` centres of the proposals for the codes of normalised data ``u``: the prior's."""
        return torch.zeros(len(u), self.latent_dim, device=u.device, dtype=u.dtype)

    def latent_generator(self, context: Tensor | None = None) -> LatentGenerator:
        """The averaged generator, in data units (given each row's label, for a conditional GAN)."""

        def generate(z: Tensor, rows: Tensor) -> Tensor:
            return self.decode(
                z, context=None if context is None else context[rows.to(context.device)]
            )

        return LatentGenerator(self.latent_dim, generate, self.normalizer.shift.device)

    def latent_variable_model(
        self, noise_std: float, context: Tensor | None = None
    ) -> LatentVariableModel:
        r"""The averaged generator under Gaussian observation noise :math:`\sigma` (normalised units).

        :math:`\log p(x_d \mid z) = -\frac{1}{2\sigma^2}(G(z)_d - u(x)_d)^2` up to a constant,
        a draw of :math:`x \mid z` is the noise-free :math:`G(z)` (as :meth:`sample`), and the
        proposal is centred at :meth:`latent_proposal` with unit scale. For chains with the
        labels ``context`` (a conditional GAN), :math:`G(z, y)` with each chain's label.
        """
        shape, net, d = self.info.event_shape, self.averaged["generator"], self.info.n_features
        shift, scale = self.normalizer.flat()
        labels = self.one_hot_labels(context)

        def decode(z: Tensor) -> Tensor:  # (chains[, S], k) -> (chains[, S], D) normalised
            if labels is not None:  # one label per chain
                rows = labels.to(z.dtype).view(len(z), *[1] * (z.dim() - 2), -1)
                z = torch.cat([z, rows.expand(*z.shape[:-1], -1)], -1)
            return net(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], d)

        def coordinate_log_prob(out: Tensor, x: Tensor) -> Tensor:
            return -0.5 * ((out - (x - shift) / scale) / noise_std).square()

        def proposal(x: Tensor) -> tuple[Tensor, Tensor]:
            loc = self.latent_proposal(((x - shift) / scale).view(-1, *shape))
            return loc, torch.ones_like(loc)

        return LatentVariableModel(
            start=shift,  # normalised value 0
            decode=decode,
            coordinate_log_prob=coordinate_log_prob,
            draw=lambda out, generator: out * scale + shift,
            proposal=proposal,
        )

    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise_std: float = 0.1,
        steps: int = 200,
        n_candidates: int = 64,
        context: Tensor | None = None,
    ) -> Tensor:
        r"""``(n, batch, *event_shape)`` completions :math:`G(z)_u` with :math:`z \sim p(z \mid x_o)`.

        A GAN has no likelihood, so conditioning needs an **observation-noise model**: the
        observed values are the generator's output plus Gaussian noise in normalised units
        (images scaled to :math:`[-1, 1]`, vectors standardised),
        :math:`u(x_o) = G(z)_o + \sigma \varepsilon`, :math:`z \sim \mathcal N(0, I)`, so

        .. math::
            \log p(z \mid x_o) = \log \mathcal N(z; 0, I)
            - \frac{1}{2\sigma^2} \lVert G(z)_o - u(x_o) \rVert^2 + \text{const}.

        Each chain draws :math:`z` by sampling-importance-resampling from a widened Gaussian
        centred at :meth:`latent_proposal` (the prior for the GAN, the encoder's code for BiGAN)
        and ``steps`` MALA transitions (the first half adapt the step size;
        :func:`~genlab.samplers.complete_from_latent`), then returns the averaged
        generator's :math:`G(z)_u` next to the observed values (noise-free, like :meth:`sample`).

        Assumptions: the chains target this posterior exactly at stationarity, but the answer is
        only as good as the noise model: :math:`\sigma` (``noise_std``) trades fidelity to
        :math:`x_o` against the generator's prior (small :math:`\sigma` makes the posterior
        sharp and multimodal, hence slow to mix); it is a modelling choice, not learned.
        This is the Langevin posterior sampling used to invert GANs for inpainting (Yeh et al.,
        2017, with an accept step added).

        Arguments:
            x: ``(batch, *event_shape)``; only observed coordinates are read.
            mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
            n: completions per example (independent chains).
            noise_std: :math:`\sigma`, in normalised units.
            steps: MALA transitions per chain.
            n_candidates: SIR candidates per chain.
            context: ``(batch,)`` labels of a conditional GAN: chains draw
                :math:`z \\sim p(z \\mid x_o, y)` through :math:`G(z, y)`.

        References:
            Yeh et al., "Semantic Image Inpainting with Deep Generative Models", CVPR 2017,
            arXiv:1607.07539.
            Roberts & Tweedie, Bernoulli 2(4), 1996 (MALA).
        """
        self.check_input(x, context=context)
        check(noise_std > 0, f"noise_std must be positive, got {noise_std}")
        return complete_from_latent(
            lambda chains: self.latent_variable_model(noise_std, chains),
            x,
            mask,
            n,
            steps=steps,
            n_candidates=n_candidates,
            generator=generator,
            context=context,
        )

    # ------------------------------------------------------------------ training

    @torch.no_grad()
    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        if self.info.kind == "image":  # scale the value range to [-1, 1], tanh's range
            low, high = self.info.value_range
            self.normalizer.shift.fill_((low + high) / 2)
            self.normalizer.scale.fill_((high - low) / 2)
        else:
            self.normalizer.fit(x_train)
        self.averaged.reset_(self.generator_player())

    def differentiated_twice(self) -> set[str]:
        """The discriminator when a penalty (R1, WGAN-GP) differentiates it in its input."""
        penalised = self.config.r1_weight > 0 or self.config.gp_weight > 0
        return {"discriminator"} if penalised else set()

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config

        def make(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
            if cfg.optimizer == "rmsprop":
                return torch.optim.RMSprop(params, lr=lr, weight_decay=train.weight_decay)
            return adam(params, lr=lr, betas=cfg.betas, weight_decay=train.weight_decay)

        g_params = [p for m in self.generator_player().values() for p in m.parameters()]
        return {
            "discriminator": make(
                list(self.discriminator.parameters()), train.lr * cfg.d_lr_scale
            ),
            "generator": make(g_params, train.lr),
        }

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``d_steps`` discriminator updates on slices of ``x``, one generator update, averaging.

        A conditional GAN's generated data takes the labels (``context``) of the real slice.
        """
        u, labels = self.normalizer(x), self.one_hot_labels(context)
        size = math.ceil(len(u) / self.config.d_steps)
        slices = u.split(size)
        label_slices = [None] * len(slices) if labels is None else labels.split(size)
        r1_due = self.config.r1_weight > 0 and int(self.steps) % self.config.r1_every == 0
        for i, (real, y) in enumerate(zip(slices, label_slices, strict=True)):
            d_metrics = self.discriminator_step(
                real, optimizers, generator, r1=r1_due and i == 0, labels=y
            )
        g_metrics = self.generator_step(slices[-1], optimizers, generator, labels=label_slices[-1])
        self.steps += 1
        self.update_average()
        # the losses first: the progress bar shows the first two
        losses = {"d_loss": d_metrics.pop("d_loss"), "g_loss": g_metrics.pop("g_loss")}
        return {**losses, **d_metrics, **g_metrics}

    def discriminator_step(
        self,
        real: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        r1: bool,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One discriminator update; ``r1``: add the (lazy) R1 penalty this time.

        ``labels``: the real slice's one-hot labels (a conditional GAN), which the generated
        data takes too; the penalties' gradients are in the data with the labels fixed.
        """
        cfg, game = self.config, ADVERSARIAL_LOSSES[self.config.loss]
        with torch.no_grad():
            real_in = self.real_inputs(real)
            fake_in = self.fake_inputs(self.latent(len(real), generator), labels)
        if r1:
            real_in = tuple(r.detach().requires_grad_(True) for r in real_in)
        both = None if labels is None else torch.cat([labels, labels])
        out = self.critic(
            *(torch.cat([r, f]) for r, f in zip(real_in, fake_in, strict=True)), labels=both
        )
        real_out, fake_out = out[: len(real)], out[len(real) :]
        d_loss = game.discriminator(real_out, fake_out)
        total = d_loss
        metrics: dict[str, Tensor] = {}
        if cfg.gp_weight > 0:
            points = interpolate(real_in, fake_in, generator)  # example i: both have label i
            penalty = gradient_penalty(self.critic(*points, labels=labels), points)
            total = total + cfg.gp_weight * penalty
            metrics["gradient_penalty"] = penalty.detach()
        if r1:
            # lazy regularisation: every r1_every steps, with the weight scaled to match
            penalty = r1_penalty(real_out, real_in)
            total = total + 0.5 * cfg.r1_weight * cfg.r1_every * penalty
            self.last_r1.copy_(penalty.detach())
        if cfg.r1_weight > 0:
            metrics["r1_penalty"] = self.last_r1.clone()
        optimizers.minimize(total, "discriminator")
        if cfg.clip is not None:
            clip_weights_(self.discriminator, cfg.clip)
        real_out, fake_out = real_out.detach(), fake_out.detach()
        if game.probability:
            d_real, d_fake = real_out.sigmoid().mean(), fake_out.sigmoid().mean()
        else:
            d_real, d_fake = real_out.mean(), fake_out.mean()
        return {
            "d_loss": d_loss.detach(),
            "d_real": d_real,
            "d_fake": d_fake,
            "wasserstein_estimate": real_out.mean() - fake_out.mean(),
            "d_grad_norm": self.grad_norm(optimizers, "discriminator"),
            **metrics,
        }

    def generator_step(
        self,
        real: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One update of the generator player; its data takes ``labels`` (a conditional GAN)."""
        game = ADVERSARIAL_LOSSES[self.config.loss]
        self.discriminator.requires_grad_(False)  # no weight gradients for the other player
        try:
            fake_in = self.fake_inputs(self.latent(len(real), generator), labels)
            g_loss = game.generator(self.critic(*fake_in, labels=labels))
            g_loss = g_loss + self.encoder_loss(real)
            optimizers.minimize(g_loss, "generator")
        finally:
            self.discriminator.requires_grad_(True)
        return {"g_loss": g_loss.detach(), "g_grad_norm": self.grad_norm(optimizers, "generator")}

    def encoder_loss(self, real: Tensor) -> Tensor:
        """The generator player's loss on real data (BiGAN's encoder); none for a GAN."""
        return real.new_zeros(())

    @staticmethod
    def grad_norm(optimizers: Optimizers, name: str) -> Tensor:
        """Gradient norm of one player's last update (before clipping, if the trainer clips)."""
        if name in optimizers.grad_norms:
            return optimizers.grad_norms[name].detach()
        return total_grad_norm(optimizers.parameters(name))

    def update_average(self) -> None:
        """One EMA step of the averaged copies of the generator player's modules."""
        self.averaged.update_(self.generator_player(), int(self.steps), self.config.ema_decay)

    def validation_metrics(
        self, x_val: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> dict[str, float]:
        """Mean :math:`D` on held-out data (``d_real_val``) and, on the 2-D mixtures, mode coverage.

        ``d_real_val`` well below the training batches' ``d_real`` means the discriminator is
        memorising the training set (Karras et al., 2020, arXiv:2006.06676). Mode coverage is
        that of 2,500 samples (:mod:`genlab.stats.modes`); a conditional GAN's draw them given
        the held-out labels in turn, samples of the marginal :math:`\\sum_y p(y)\\, p(x \\mid y)`.
        """
        game = ADVERSARIAL_LOSSES[self.config.loss]
        labels = self.one_hot_labels(context)
        outputs = torch.cat(
            [  # chunks of 1,024 examples and their labels
                self.critic(
                    *self.real_inputs(self.normalizer(x_val[i : i + 1024])),
                    labels=None if labels is None else labels[i : i + 1024],
                )
                for i in range(0, len(x_val), 1024)
            ]
        )
        metrics = {
            "d_real_val": float((outputs.sigmoid() if game.probability else outputs).mean())
        }
        if self.info.mode_centres is not None:
            asked = None
            if context is not None:
                asked = context[torch.arange(N_SAMPLES, device=context.device) % len(context)]
            samples = self.sample(N_SAMPLES, generator=generator, context=asked)
            result = mode_coverage_for(samples, self.info)
            metrics.update(
                modes_captured=result.modes_captured,
                hq_fraction=result.hq_fraction,
                mode_kl=result.mode_kl,
            )
        return metrics
