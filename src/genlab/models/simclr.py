r"""SimCLR: one encoder learns a representation by telling augmented views of an example apart.

Each training example :math:`x` is augmented twice, :math:`\tilde x_1 = t_1(x)`,
:math:`\tilde x_2 = t_2(x)` (:mod:`genlab.data.augment`: shifts, small rotations, resized
crops, cut-out and noise for images; masking and noise for vectors). The encoder :math:`f` gives
the representation :math:`h = f(\tilde x)` and a projection head :math:`g` (an MLP) the
embedding :math:`z = g(h)` on which the NT-Xent loss (:func:`genlab.objectives.nt_xent`)
pulls the two views of an example together and pushes the other :math:`2N - 2` views of the
batch away. The representation is taken *before* the head, :meth:`SimCLR.encode`
:math:`= f(x)` of the un-augmented input: the head discards what the augmentations vary,
which the paper finds makes :math:`z` a worse code than :math:`h` (arXiv:2002.05709,
section 4.2).

The model learns a code only: it has no decoder, density or sampler. Its validation loss is
the same contrastive loss on the validation split, with the views drawn from the trainer's
fixed validation generator, so that successive validations compare like with like (the value
depends on the batch size; see :mod:`genlab.objectives.contrastive`).

References:
    Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual
    Representations", arXiv:2002.05709.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genlab.config import check
from genlab.data.augment import augment_images, augment_vectors
from genlab.data.dataset import DataInfo
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import (
    ACTIVATIONS,
    MLP,
    Activation,
    AffineNormalizer,
    EncoderArchitecture,
    build_encoder,
)
from genlab.objectives.contrastive import CONTRASTIVE_LOSSES, ContrastiveLoss, contrastive_loss

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers


@dataclass(frozen=True)
class SimCLRConfig:
    """Attributes:
    latent_dim: size of the representation :math:`h` (the code ``encode`` returns).
    architecture: encoder ``"mlp"`` or ``"conv"`` (images only).
    hidden: hidden layer sizes of the MLP encoder.
    channels: channels of the first conv layer.
    activation: non-linearity (a key of ``genlab.nn.mlp.ACTIVATIONS``).
    projection_dim: size of the embedding :math:`z` the loss sees.
    projection_hidden: hidden size of the two-layer projection head.
    temperature: :math:`\\tau` of the loss.
    loss: ``"info_nce"`` (NT-Xent over the 2N views) or ``"ratio"`` (the pooled ratio loss).
    max_shift: largest image shift in pixels.
    max_rotation: largest image rotation in degrees.
    min_crop: smallest area fraction of the random resized crop (1 disables).
    noise: standard deviation of the Gaussian noise, in units of the data's standard deviation.
    cutout: side of the cut-out square in pixels (0 disables).
    cutout_prob: probability that an image gets a cut-out.
    mask_prob: probability that a vector coordinate is masked (set to its mean).
    """

    latent_dim: int = 16
    architecture: EncoderArchitecture = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    channels: int = 32
    activation: Activation = "relu"
    projection_dim: int = 64
    projection_hidden: int = 256
    temperature: float = 0.5
    loss: ContrastiveLoss = "info_nce"
    max_shift: float = 1.0
    max_rotation: float = 12.0
    min_crop: float = 0.8
    noise: float = 0.1
    cutout: int = 2
    cutout_prob: float = 0.5
    mask_prob: float = 0.1

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(self.projection_dim >= 1, "projection_dim must be >= 1")
        check(self.projection_hidden >= 1, "projection_hidden must be >= 1")
        check(self.temperature > 0, f"temperature must be positive, got {self.temperature}")
        check(self.loss in CONTRASTIVE_LOSSES, f"loss must be one of {CONTRASTIVE_LOSSES}")
        check(self.max_shift >= 0 and self.max_rotation >= 0, "shift and rotation must be >= 0")
        check(0 < self.min_crop <= 1, f"min_crop must be in (0, 1], got {self.min_crop}")
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        check(self.cutout >= 0, f"cutout must be >= 0, got {self.cutout}")
        check(0 <= self.cutout_prob <= 1, "cutout_prob must be in [0, 1]")
        check(0 <= self.mask_prob < 1, "mask_prob must be in [0, 1)")


class SimCLR(GenerativeModel):
    """Contrastive encoder trained on two augmented views (see module docstring)."""

    family = "simclr"
    capabilities = Capabilities(
        sample=False, log_prob="none", encode=True, decode=False, conditional="none"
    )
    description = "contrastive, two augmented views"
    task_notes = {
        "representation": "encoder output, before the projection head",
    }
    config_class = SimCLRConfig
    # no early stopping: on digits the validation loss still falls slowly at epoch 600, with
    # plateaus longer than 50 epochs; patience 50 stopped runs at a probe accuracy of
    # 0.973 +- 0.008 (3 seeds), 600 epochs reach 0.98 (scripts/contrastive_quality.py)
    default_train = {"epochs": 600, "batch_size": 512, "lr": 1e-3, "patience": None}
    budgets = {
        "smoke": {"steps": 10, "batch_size": 128},
        "fast": {"epochs": 200},
        "full": {"epochs": 1000},
    }

    def __init__(self, config: SimCLRConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.latent_dim = config.latent_dim
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")
        self.encoder = build_encoder(
            info.event_shape,
            config.latent_dim,
            config.architecture,
            config.hidden,
            config.channels,
            config.activation,
        )
        self.head = MLP(
            config.latent_dim,
            config.projection_dim,
            (config.projection_hidden,),
            config.activation,
        )

    def prepare(self, x_train: Tensor) -> None:
        self.normalizer.fit(x_train)

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """The representation :math:`h = f(x)`, ``(batch, latent_dim)``."""
        self.check_input(x, context=context)
        return self.encoder(self.normalizer(x))

    def augment(self, u: Tensor, generator: torch.Generator) -> Tensor:
        """One random view of the normalised batch ``u`` (see :mod:`genlab.data.augment`)."""
        c = self.config
        if self.info.kind == "image":
            background = (self.info.value_range[0] - self.normalizer.shift) / self.normalizer.scale
            return augment_images(
                u,
                generator,
                max_shift=c.max_shift,
                max_rotation=c.max_rotation,
                min_crop=c.min_crop,
                noise=c.noise,
                cutout_size=c.cutout,
                cutout_prob=c.cutout_prob,
                fill=float(background.flatten()[0]),
            )
        return augment_vectors(u, generator, noise=c.noise, mask_prob=c.mask_prob)

    def _loss(self, x: Tensor, generator: torch.Generator, gather: bool) -> Tensor:
        u = self.normalizer(x)
        views = torch.cat([self.augment(u, generator), self.augment(u, generator)])  # (2B, ...)
        z1, z2 = self.head(self.encoder(views)).chunk(2)
        c = self.config
        return contrastive_loss(c.loss, z1, z2, c.temperature, views=True, gather=gather)

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        # under torch.distributed the loss sees the views of every rank's batch
        loss = self._loss(x, generator, gather=True).mean()
        optimizers.minimize(loss)
        return {"loss": loss.detach()}

    def validation_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        # local: a validation split is not sharded, so gathering would repeat its examples
        return self._loss(x, generator, gather=False)
