r"""VQ-VAE: a grid of discrete codes, a decoder likelihood, and a PixelCNN prior over the grid.

.. math::
    z = (z_{ij}) \in \{1..K\}^{h \times w} \sim p_\psi(z) = \prod_{ij} p_\psi(z_{ij} \mid
    z_{<ij}), \qquad x \mid z \sim p_\theta(x \mid e_z),

with :math:`e_z` the codebook vectors of the grid and :math:`p_\psi` a gated PixelCNN over the
codes in raster order (:class:`~genlab.nn.pixelcnn.GatedPixelCNN` on learned embeddings of the
codes, :math:`K` logits per position). The encoder maps an image to a grid of vectors
:math:`z_e(x)` (a conv net halving the image down to ``grid``, or an MLP), and each vector to
its nearest code (:mod:`genlab.nn.quantizer`): the code budget is :math:`hw \log_2 K` bits
per example (:attr:`VQVAE.code_bits`).

**Training** (one loop): per step, the autoencoder minimises :math:`-\log p(x \mid z_q) +
\beta \lVert z_e - \mathrm{sg}[z_q] \rVert^2` (plus the codebook loss with
``codebook_update="loss"``; with ``"ema"``, the default, the codebook follows the EMA of its
assigned encoder outputs), the reconstruction reaching the encoder by the straight-through
estimator; and the prior minimises :math:`-\log p_\psi(z_q)` on the same batch's codes, taken
as data (no gradient reaches the encoder from it). Codes whose running count falls below
``revive_threshold`` move onto random encoder outputs of the batch. Two stages, each selected
on the validation loss (the negative bound below): for ``autoencoder_steps`` both train as
above (the prior tracking the codes as they move), or until early stopping ends the stage;
then the trainer restores the weights of the stage's best validation
(:meth:`GenerativeModel.stage_ended`), the autoencoder and the codebook freeze, and the prior
trains alone on their codes, as the paper trains it after the autoencoder, until its own best
validation. (Selecting across the stages kept the joint
stage's weights: a frozen autoencoder's last step is worse than its best by more than the
prior then gains, so the prior's stage was thrown away; README measures the difference.)

**Density**: the encoder is a point-mass posterior, so (:func:`~genlab.objectives.quantized_bound`)

.. math::
    \log p(x) \ge \log p_\theta(x \mid z_q(x)) + \log p_\psi(z_q(x)),

a lower bound (``capabilities.log_prob = "lower_bound"``) with the decoder likelihoods of
:mod:`genlab.nn.likelihoods`, discrete for :math:`L`-level data (``needs_dequantization`` is
then False and the encoder reads the level of each dequantised value, so the bound is a
function of the levels alone and its bits/dim are those of the discrete likelihood).

**Conditional sampling** (``"approximate"``): the example, its unobserved part at the training
mean, is encoded; the codes of the longest raster prefix of the grid whose image regions are
entirely observed are kept (conv encoders only: an MLP's codes each read every pixel, so none
is kept); the remaining codes are drawn from the prior given that prefix (exact under the prior,
:func:`~genlab.samplers.sample_in_order`), ``n_candidates`` times per completion, one candidate
resampled with weight :math:`p(x_o \mid z)` (sampling-importance-resampling), and
:math:`x_u \sim p(x_u \mid z)`. As the candidates grow this draws from
:math:`p(x_u \mid x_o, z_{prefix})`; the kept prefix is the encoder's guess, not a draw from
:math:`p(z_{prefix} \mid x_o)`, hence "approximate".

Code usage is logged at each validation: the fraction of the codebook used and the perplexity
of the code histogram over the training steps since the last validation (a whole epoch by
default) and over the validation split, with the bits each term of the bound costs.

Distributed training: the EMA statistics and revivals are each rank's own (the codebooks of
the ranks drift apart); use ``codebook_update="loss"`` and ``revive_threshold=0`` under
``torchrun``.

References:
    van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS
    2017, arXiv:1711.00937.
    Razavi, van den Oord & Vinyals, "Generating Diverse High-Fidelity Images with VQ-VAE-2",
    NeurIPS 2019, arXiv:1906.00446.
    van den Oord et al., "Conditional Image Generation with PixelCNN Decoders", NeurIPS 2016,
    arXiv:1606.05328 (the prior).
    Dhariwal et al., "Jukebox: A Generative Model for Music", 2020, arXiv:2005.00341 (code
    restarts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import ACTIVATIONS, Activation, AffineNormalizer, build_decoder, build_encoder
from genlab.nn.conv import ConvGridDecoder, ConvGridEncoder
from genlab.nn.likelihoods import (
    DecoderLikelihood,
    Likelihood,
    check_decoder_likelihood,
    make_likelihood,
    resolve_decoder_likelihood,
)
from genlab.nn.pixelcnn import GatedPixelCNN
from genlab.nn.quantizer import VectorQuantizer, code_usage, straight_through
from genlab.objectives import codebook_loss, commitment_loss, quantized_bound
from genlab.samplers import complete, draw_categorical, sample_in_order

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

VQArchitecture = Literal["auto", "conv", "mlp"]
VQ_ARCHITECTURES: tuple[str, ...] = get_args(VQArchitecture)
CodebookUpdate = Literal["ema", "loss"]
CODEBOOK_UPDATES: tuple[str, ...] = get_args(CodebookUpdate)
SAMPLING_CHUNK = 1024  # code grids drawn at a time (each step draws a categorical per position)


@dataclass(frozen=True)
class VQVAEConfig:
    """Attributes:
    architecture: encoder and decoder: ``"conv"`` (images: halvings down to ``grid``),
        ``"mlp"`` (any data: an MLP to ``grid`` vectors) or ``"auto"`` (conv for images).
    grid: ``(h, w)`` codes per example; conv grids are the image halved (8x8 -> 4x4 or 2x2).
    codebook_size: :math:`K` codes; the budget is :math:`hw \\log_2 K` bits per example.
    code_dim: size :math:`d` of a code vector.
    hidden: hidden sizes of the MLP encoder; the decoder mirrors them.
    channels: channels of the first conv layer (doubling at each halving).
    activation: non-linearity between layers.
    likelihood: the decoder likelihood (:mod:`genlab.nn.likelihoods`); ``"auto"`` as the VAE.
    gaussian_std: fixed decoder std of the Gaussian likelihood; ``None`` learns one.
    beta: weight :math:`\\beta` of the commitment loss.
    codebook_update: ``"ema"`` (moving averages of the assigned encoder outputs) or ``"loss"``
        (the codebook loss, by the optimiser).
    decay: :math:`\\gamma` of the EMA update (and of the running code counts either way).
    epsilon: Laplace smoothing :math:`\\epsilon` of the EMA update's counts.
    revive_threshold: codes whose running count (assignments per step) falls below it move
        onto random encoder outputs; 0 never revives.
    autoencoder_steps: training steps of the autoencoder (with the prior alongside); after
        them the best validated weights are restored, the autoencoder and codebook freeze and
        the prior trains alone on their codes.
        ``None``: the autoencoder trains throughout.
    prior_channels: channels of the PixelCNN prior (and of its code embeddings).
    prior_layers: gated layers of the prior.
    prior_kernel: odd kernel size of the prior.
    prior_dropout: dropout in the prior's residual branches.
    """

    architecture: VQArchitecture = "auto"
    grid: tuple[int, int] = (4, 4)
    codebook_size: int = 32
    code_dim: int = 16
    hidden: tuple[int, ...] = (256, 256)
    channels: int = 32
    activation: Activation = "relu"
    likelihood: DecoderLikelihood = "auto"
    gaussian_std: float | None = None
    beta: float = 0.25
    codebook_update: CodebookUpdate = "ema"
    decay: float = 0.99
    epsilon: float = 1e-5
    revive_threshold: float = 1.0
    autoencoder_steps: int | None = 3000
    prior_channels: int = 32
    prior_layers: int = 4
    prior_kernel: int = 3
    prior_dropout: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.architecture in VQ_ARCHITECTURES,
            f"architecture must be one of {VQ_ARCHITECTURES}, got {self.architecture!r}",
        )
        check(
            len(self.grid) == 2 and all(s >= 1 for s in self.grid),
            f"grid must be two sizes >= 1 (h, w), got {self.grid}",
        )
        check(self.codebook_size >= 2, f"codebook_size must be >= 2, got {self.codebook_size}")
        check(self.code_dim >= 1, f"code_dim must be >= 1, got {self.code_dim}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check_decoder_likelihood(self.likelihood, self.gaussian_std)
        check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        check(
            self.codebook_update in CODEBOOK_UPDATES,
            f"codebook_update must be one of {CODEBOOK_UPDATES}, got {self.codebook_update!r}",
        )
        check(0 <= self.decay < 1, f"decay must be in [0, 1), got {self.decay}")
        check(self.epsilon > 0, f"epsilon must be positive, got {self.epsilon}")
        check(self.revive_threshold >= 0, "revive_threshold must be >= 0")
        check(
            self.autoencoder_steps is None or self.autoencoder_steps >= 1,
            f"autoencoder_steps must be >= 1 or None, got {self.autoencoder_steps}",
        )
        check(self.prior_channels >= 1, f"prior_channels must be >= 1, got {self.prior_channels}")
        check(self.prior_layers >= 1, f"prior_layers must be >= 1, got {self.prior_layers}")
        check(
            self.prior_kernel >= 3 and self.prior_kernel % 2 == 1,
            f"prior_kernel must be odd >= 3, got {self.prior_kernel}",
        )
        check(0 <= self.prior_dropout < 1, "prior_dropout must be in [0, 1)")


class VQVAE(GenerativeModel):
    """VQ-VAE with a gated PixelCNN prior over its grid of codes (see module)."""

    family = "vqvae"
    capabilities = Capabilities(
        sample=True,
        log_prob="lower_bound",
        encode=True,
        decode=True,
        conditional="approximate",
    )
    description = "VQ-VAE with a PixelCNN prior over its code grid"
    task_notes = {
        "generation": "codes from the PixelCNN prior, then the decoder",
        "density": "log p(x ∣ z_q) + log p(z_q): point-mass posterior",
        "representation": "the quantised code vectors; `code_indices(x)` is the grid",
        "conditional": "observed code prefix kept, the rest from the prior, resampled by p(x_o ∣ z)",
    }
    config_class = VQVAEConfig
    pixel_noise = True
    default_train = {"epochs": 500, "batch_size": 128, "lr": 2e-3, "patience": 30}
    budgets = {
        "smoke": {
            "steps": 40,
            "autoencoder_steps": 30,
            "grid": (2, 2),
            "codebook_size": 16,
            "code_dim": 4,
            "hidden": (32,),
            "channels": 8,
            "prior_channels": 8,
            "prior_layers": 2,
        },
        "fast": {"epochs": 35, "autoencoder_steps": 250, "patience": 10},
        "full": {"epochs": 1000, "patience": 50},
    }
    # 28x28 images (real MNIST, seed 0, fast; README): the 8x8 settings' 4x4 grid of 32 codes
    # (80 bits an image) leaves the decoder most of the bits (test bound 1.70 bits/dim); a 7x7
    # grid with the autoencoder trained 1,000 steps gives 1.46 but a 4-layer prior sees a few
    # codes of the grid (0.71 of the samples confidently classified, 0.81 with 4x4); 8 gated
    # layers of 64 channels: 1.45 and 0.74. full (3,000 autoencoder steps), seeds 0, 1, 2: 1.368
    # +- 0.006 bits/dim, FID 124, 0.860 +- 0.012 confident; the prior's stage is best at its first
    # validation (21 steps in) and over-fits after, and the autoencoder's went at most 11
    # validations without a new best, so patience 20 selects the same weights as the 8x8
    # setting's 50 with 30 fewer epochs (5,871 steps in 6,015 s, three jobs on the 2 cores; seed 0
    # rerun with 20: the same row, 4,161 steps in 2,915 s)
    step_settings = ("autoencoder_steps",)
    large_image_budgets = {
        budget: {"grid": (7, 7), "prior_layers": 8, "prior_channels": 64, **settings}
        for budget, settings in {
            None: {},
            "fast": {"autoencoder_steps": 1000},
            "full": {"patience": 20},
        }.items()
    }

    def __init__(self, config: VQVAEConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        shape, grid = info.event_shape, tuple(config.grid)
        self.architecture = "conv" if info.kind == "image" else "mlp"
        if config.architecture != "auto":
            check(
                config.architecture != "conv" or info.kind == "image",
                "vqvae: architecture=conv needs image data",
            )
            self.architecture = config.architecture
        self.likelihood_name = resolve_decoder_likelihood(config.likelihood, info)
        self.record_decisions(likelihood=self.likelihood_name)
        self.likelihood: Likelihood = make_likelihood(
            self.likelihood_name, info, config.gaussian_std
        )
        self.normalizer = AffineNormalizer(shape, per_feature=info.kind == "vector")
        k, d = config.codebook_size, config.code_dim
        self.grid_shape = (d, *grid)  # one example's code vectors, (d, h, w)
        self.latent_dim = d * math.prod(grid)
        n_params = self.likelihood.n_params
        if self.architecture == "conv":
            out_shape = (n_params * shape[0], *shape[1:])  # parameters stacked along channels
            self.encoder: nn.Module = ConvGridEncoder(
                shape, d, grid, config.channels, config.activation
            )
            self.decoder: nn.Module = nn.Sequential(
                ConvGridDecoder(d, grid, out_shape, config.channels, config.activation),
                nn.Flatten(),
            )
        else:
            hidden, activation = config.hidden, config.activation
            self.encoder = nn.Sequential(
                build_encoder(shape, self.latent_dim, "mlp", hidden, activation=activation),
                nn.Unflatten(1, self.grid_shape),
            )
            self.decoder = nn.Sequential(
                nn.Flatten(),
                build_decoder(
                    self.latent_dim,
                    (n_params * info.n_features,),
                    "mlp",
                    hidden[::-1],
                    activation=activation,
                    flat=True,
                ),
            )
        self.quantizer = VectorQuantizer(k, d, config.codebook_update)
        self.prior_embedding = nn.Embedding(k, config.prior_channels)
        self.prior = GatedPixelCNN(
            k,
            config.prior_channels,
            config.prior_layers,
            config.prior_kernel,
            config.prior_dropout,
            in_channels=config.prior_channels,
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("prior_only", torch.zeros((), dtype=torch.bool))  # the second stage
        # assignments per code since the last validation (not saved: a diagnostic)
        self.register_buffer("epoch_counts", torch.zeros(k, dtype=torch.long), persistent=False)

    @property
    def code_bits(self) -> float:
        """The code budget :math:`hw \\log_2 K` in bits per example."""
        return math.prod(self.config.grid) * math.log2(self.config.codebook_size)

    # ------------------------------------------------------------------ the model's pieces

    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        self.normalizer.fit(x_train)
        self.likelihood.prepare(x_train)
        self.likelihood.check_data(x_train)

    @property
    def needs_dequantization(self) -> bool:
        """False for discrete likelihoods: their density is constant on each level's bin."""
        return not self.likelihood.discrete

    def _encoder_input(self, x: Tensor, target: Tensor) -> Tensor:
        """What the encoder reads: the levels themselves for a discrete likelihood (so that a
        dequantised value and its level get the same codes), else ``x``."""
        if self.likelihood.discrete:
            return self.likelihood.from_target(target).view_as(x).to(x.dtype)
        return x

    def _encode(self, x: Tensor) -> Tensor:
        """``(B, d, h, w)`` encoder outputs :math:`z_e(x)`."""
        return self.encoder(self.normalizer(x))

    def _decoder_params(self, z_q: Tensor) -> Tensor:
        """``(B, n_params, D)`` likelihood parameters for code vectors ``(B, d, h, w)``."""
        return self.decoder(z_q).view(len(z_q), self.likelihood.n_params, self.info.n_features)

    def prior_logits(self, indices: Tensor) -> Tensor:
        """``(B, K, h, w)`` logits of :math:`p(z_{ij} \\mid z_{<ij})` for code grids ``(B, h, w)``."""
        return self.prior(self._prior_input(indices))

    def _prior_input(self, indices: Tensor) -> Tensor:
        """``(B, prior_channels, h, w)`` the embedded code grids ``(B, h, w)`` the prior reads."""
        return self.prior_embedding(indices).movedim(-1, 1)

    def prior_log_prob(self, indices: Tensor) -> Tensor:
        """``(B,)`` :math:`\\log p_\\psi(z) = \\sum_{ij} \\log p_\\psi(z_{ij} \\mid z_{<ij})`."""
        log_p = -F.cross_entropy(self.prior_logits(indices), indices, reduction="none")
        return log_p.flatten(1).sum(-1)

    def code_indices(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, h, w)`` the grid of code indices of ``x``, each the nearest code of its vector."""
        self.check_input(x, context=context)
        x = self._encoder_input(x, self.likelihood.checked_target(x))
        return self.quantizer(self._encode(x))[0]

    def embed(self, indices: Tensor) -> Tensor:
        """``(B, h, w)`` code indices -> ``(B, latent_dim)`` their code vectors, flattened."""
        return self.quantizer.embed(indices).flatten(1)

    # ------------------------------------------------------------------ the four tasks

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, latent_dim)`` the quantised code vectors :math:`z_q(x)`, flattened from
        ``(B, d, h, w)`` (:meth:`code_indices` gives their indices)."""
        return self.embed(self.code_indices(x, context=context))

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        """The mean of :math:`p(x \\mid z)` for code vectors ``(B, latent_dim)`` (quantised or
        not: the decoder reads them as they are), ``(B, *event_shape)``."""
        self.check_context(context, len(z))
        params = self._decoder_params(z.view(-1, *self.grid_shape))
        return self.likelihood.mean(params).view(-1, *self.info.event_shape)

    def _sample_codes(
        self, codes: Tensor, start: int, generator: torch.Generator | None
    ) -> Tensor:
        """``codes`` ``(B, h, w)`` with positions ``start..`` (raster order) drawn from the prior
        given the ones before (:func:`~genlab.samplers.sample_in_order`), in chunks."""
        h, w = self.config.grid
        order = torch.arange(h * w, device=codes.device)

        def draw(logits: Tensor, d: int, generator: torch.Generator | None) -> Tensor:
            return draw_categorical(logits[:, :, d], generator)  # (B,) codes of position d

        chunks = [
            sample_in_order(
                self.prior.raster_conditionals(
                    lambda flat: self._prior_input(flat.view(-1, h, w)), len(chunk), h, w
                ),
                draw,
                chunk.flatten(1),
                order,
                start,
                generator,
            )  # fmt: skip
            for chunk in codes.split(SAMPLING_CHUNK)
        ]
        return torch.cat(chunks).view_as(codes)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        """Codes from the prior by ancestral sampling, then :math:`x \\sim p(x \\mid z)`."""
        self.check_context(context, n)
        x = self.likelihood.sample(self._prior_decoder_params(n, generator), generator)
        return x.view(n, *self.info.event_shape).float()

    def sample_means(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        """The decoder's mean :math:`\\mathbb E[x \\mid z]` of codes drawn as :meth:`sample` draws them."""
        self.check_context(context, n)
        mean = self.likelihood.mean(self._prior_decoder_params(n, generator))
        return mean.view(n, *self.info.event_shape).float()

    def _prior_decoder_params(self, n: int, generator: torch.Generator | None) -> Tensor:
        """The decoder's parameters for ``n`` code grids drawn from the prior."""
        device = self.normalizer.shift.device
        empty = torch.zeros(n, *self.config.grid, dtype=torch.long, device=device)
        codes = self._sample_codes(empty, 0, generator)
        return self._decoder_params(self.quantizer.embed(codes))

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B,)`` the bound :math:`\\log p(x \\mid z_q) + \\log p(z_q) \\le \\log p(x)` in nats."""
        self.check_input(x, context=context)
        target = self.likelihood.checked_target(x)
        indices = self.quantizer(self._encode(self._encoder_input(x, target)))[0]
        params = self._decoder_params(self.quantizer.embed(indices))
        log_likelihood = self.likelihood.log_prob(params, target)
        return quantized_bound(log_likelihood, self.prior_log_prob(indices))

    def observed_code_prefix(self, observed: Tensor) -> int:
        """How many codes, in raster order, have image regions that ``observed`` ``(D,)`` covers
        entirely before the first that it does not (0 for an MLP: each code reads every pixel).

        Code :math:`(i, j)` of an :math:`h \\times w` grid over :math:`H \\times W` images covers
        rows :math:`\\lfloor iH/h \\rfloor .. \\lceil (i+1)H/h \\rceil - 1` and the same columns.
        """
        if self.architecture != "conv":
            return 0
        (h, w), (_, height, width) = self.config.grid, self.info.event_shape
        seen = observed.view(self.info.event_shape).all(0)  # (H, W) every channel observed
        covered = torch.tensor(
            [
                bool(
                    seen[
                        i * height // h : -(-(i + 1) * height // h),
                        j * width // w : -(-(j + 1) * width // w),
                    ].all()
                )
                for i in range(h)
                for j in range(w)
            ]
        )
        return int(covered.long().cumprod(0).sum())  # the leading run of covered codes

    @torch.no_grad()
    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        n_candidates: int = 16,
        context: Tensor | None = None,
    ) -> Tensor:
        """``(n, batch, *event_shape)`` completions of ``x`` where ``mask`` is False
        (``"approximate"``: the module docstring says how).

        Arguments:
            x: ``(batch, *event_shape)``; only observed coordinates are read.
            mask: bool, ``event_shape`` or ``(batch, *event_shape)``; True marks observed.
            n: completions per example.
            n_candidates: code grids drawn from the prior per completion, one kept by
                importance resampling with weight :math:`p(x_o \\mid z)`.
        """
        self.check_input(x, context=context)
        check(n_candidates >= 1, f"n_candidates must be >= 1, got {n_candidates}")
        shape, m = self.info.event_shape, n_candidates

        def fill(rows: Tensor, observed: Tensor, n: int) -> Tensor:
            mean = self.normalizer.shift.expand(shape).flatten()
            start = torch.where(observed, rows, mean.to(rows.dtype))  # (R, D)
            target = self.likelihood.target(start)
            self.likelihood.check_target(target[:, observed])
            codes = self.quantizer(
                self._encode(self._encoder_input(start.view(-1, *shape), target))
            )[0]
            # chain (i m + j) R + r: candidate j of completion i of row r
            candidates = self._sample_codes(
                codes.repeat(n * m, 1, 1), self.observed_code_prefix(observed), generator
            )
            params = self._decoder_params(self.quantizer.embed(candidates))  # (n m R, P, D)
            log_w = self.likelihood.coordinate_log_prob(params, target.repeat(n * m, 1))
            log_w = log_w[:, observed].sum(-1).view(n, m, len(rows))  # log p(x_o | z)
            pick = draw_categorical(log_w.transpose(1, 2).reshape(-1, m), generator)  # (n R,)
            params = params.view(n, m, len(rows), *params.shape[1:])
            completion = torch.arange(n, device=rows.device).repeat_interleave(len(rows))
            row = torch.arange(len(rows), device=rows.device).repeat(n)
            chosen = params[completion, pick, row]  # (n R, P, D)
            drawn = self.likelihood.sample(chosen, generator)  # (n R, D)
            return drawn[:, ~observed].reshape(n, len(rows), -1)

        return complete(x, mask, n, fill)

    # ------------------------------------------------------------------ training

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """One step of the autoencoder and the prior on the batch, or of the prior alone on the
        frozen codes after ``autoencoder_steps`` (module docstring)."""
        config = self.config
        target = self.likelihood.target(x.flatten(1))
        frozen = self.autoencoder_frozen
        with torch.set_grad_enabled(not frozen):
            z_e = self._encode(self._encoder_input(x, target))
            indices, z_q = self.quantizer(z_e)
            params = self._decoder_params(straight_through(z_e, z_q))
            # batch sums; the prior reads the codes as data (indices carry no gradient)
            log_likelihood = self.likelihood.total_log_prob(params, target)
            commitment = commitment_loss(z_e, z_q).sum()
        log_prior = self.prior_log_prob(indices).sum()
        if frozen:
            optimizers.minimize(-log_prior / len(x))
        else:
            loss = -log_likelihood - log_prior + config.beta * commitment
            if config.codebook_update == "loss":
                loss = loss + codebook_loss(z_e, z_q).sum()
            optimizers.minimize(loss / len(x))
            self.quantizer.ema_update_(z_e, indices, config.decay, config.epsilon)
            if config.revive_threshold > 0:
                self.quantizer.revive_(z_e, config.revive_threshold, generator)
        self.steps_done += 1
        self.epoch_counts += torch.bincount(indices.flatten(), minlength=config.codebook_size)
        nll, prior_nll = -log_likelihood.detach() / len(x), -log_prior.detach() / len(x)
        return {
            "loss": nll + prior_nll,  # minus the bound, in both stages
            "nll_given_codes": nll,
            "prior_nll": prior_nll,
            "commitment": commitment.detach() / len(x),
        }

    @property
    def autoencoder_frozen(self) -> bool:
        """Whether the autoencoder's stage is over and only the prior trains."""
        return bool(self.prior_only)

    def has_next_stage(self) -> bool:
        """While the autoencoder trains (and ``autoencoder_steps`` is set), the prior's stage
        follows."""
        return self.config.autoencoder_steps is not None and not self.prior_only

    def stage_ended(self) -> bool:
        """The autoencoder's stage ends after its ``autoencoder_steps`` (or when early stopping
        ends it); the trainer then restores its best validated weights, whose codes the prior
        learns alone."""
        return self.has_next_stage() and int(self.steps_done) >= self.config.autoencoder_steps

    def start_next_stage_(self) -> None:
        self.prior_only.fill_(True)

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A run saved before the stage was a buffer: the prior trained alone once
        ``steps_done`` reached ``autoencoder_steps``."""
        if "prior_only" not in state:
            steps = self.config.autoencoder_steps
            done = steps is not None and int(state["steps_done"]) >= steps
            state = {**state, "prior_only": torch.tensor(done)}
        return state

    @torch.no_grad()
    def code_usage(self, x: Tensor) -> dict[str, float]:
        """``code_usage`` (fraction of the codebook) and ``code_perplexity`` over all of ``x``."""
        k = self.config.codebook_size
        counts = sum(
            torch.bincount(self.code_indices(chunk).flatten(), minlength=k)
            for chunk in x.split(1024)
        )
        fraction, perplexity = code_usage(counts)
        return {"code_usage": fraction, "code_perplexity": perplexity}

    def validation_metrics(self, x_val: Tensor, generator: torch.Generator) -> dict[str, float]:
        """Code usage over the training steps since the last validation (``train_``: a whole
        epoch by default; reading it resets it) and over ``x_val`` (``val_``); the bound's two
        terms on ``x_val``: ``nll_given_codes`` (nats) and ``prior_bits``, beside the budget
        ``code_bits``."""
        metrics = {}
        if int(self.epoch_counts.sum()):
            fraction, perplexity = code_usage(self.epoch_counts)
            metrics["train_code_usage"], metrics["train_code_perplexity"] = fraction, perplexity
            self.epoch_counts.zero_()
        val = self.code_usage(x_val)
        metrics.update({f"val_{k}": v for k, v in val.items()})
        target = self.likelihood.checked_target(x_val)
        indices = self.code_indices(x_val)
        params = self._decoder_params(self.quantizer.embed(indices))
        metrics["nll_given_codes"] = float(-self.likelihood.log_prob(params, target).mean())
        metrics["prior_bits"] = float(-self.prior_log_prob(indices).mean()) / math.log(2.0)
        metrics["code_bits"] = self.code_bits
        return metrics
