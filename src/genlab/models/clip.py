r"""CLIP-style alignment: two encoders map the two parts of a pair into one embedding space.

CLIP aligns two modalities (an image and its caption) with two encoders and a symmetric
InfoNCE loss (:func:`genlab.objectives.info_nce`) whose temperature is learned. genlab's
datasets are single arrays, so a pair is made of **two parts of one example**: for images the
top and the bottom half (``parts="top_bottom"``, rows :math:`[0, \lfloor H/2 \rfloor)` and the
rest) or the left and the right half (``parts="left_right"``); for vectors the first
:math:`\lfloor D/2 \rfloor` coordinates and the rest. Encoder :math:`f` embeds the first
part :math:`a`, encoder :math:`g` the second part :math:`b`, and

.. math::
    M_{ij} = e^{\lambda} \, \langle \bar f(a_i), \bar g(b_j) \rangle,
    \qquad \bar f = f / \lVert f \rVert, \qquad \tau = e^{-\lambda},

with the log inverse temperature :math:`\lambda` learned and clipped at :math:`\log 100`, as in
CLIP (arXiv:2103.00020, section 2.5). Retrieval works both ways (:meth:`CLIP.retrieval`:
which bottom half belongs to this top half, and the reverse).

:meth:`CLIP.encode` returns the mean of the two unit embeddings,
:math:`\tfrac12 (\bar f(a) + \bar g(b))`, a code of the whole example in the shared space
(after training the two agree, so either alone is about the same code). The model learns a code
only: no decoder, density or sampler. Its validation loss is the symmetric InfoNCE loss on
the validation split, which involves no randomness.

References:
    Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
    arXiv:2103.00020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from genlab.config import check
from genlab.data.augment import gaussian_noise
from genlab.data.dataset import DataInfo
from genlab.errors import ConfigError
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import ACTIVATIONS, Activation, AffineNormalizer, EncoderArchitecture, build_encoder
from genlab.objectives.contrastive import CONTRASTIVE_LOSSES, ContrastiveLoss, contrastive_loss
from genlab.stats.retrieval import retrieval_accuracy

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers

Parts = Literal["top_bottom", "left_right"]
PARTS: tuple[str, ...] = get_args(Parts)
MAX_LOG_SCALE = math.log(100.0)  # CLIP clips the inverse temperature at 100


@dataclass(frozen=True)
class CLIPConfig:
    """Attributes:
    latent_dim: size of the shared embedding space (the code ``encode`` returns).
    architecture: encoders ``"mlp"`` or ``"conv"`` (images only).
    hidden: hidden layer sizes of the MLP encoders.
    channels: channels of the first conv layer.
    activation: non-linearity (a key of ``genlab.nn.mlp.ACTIVATIONS``).
    parts: how an image is cut into a pair, ``"top_bottom"`` or ``"left_right"`` (vectors:
        first half of the coordinates and the rest).
    temperature: initial :math:`\\tau` (CLIP: 0.07).
    learn_temperature: learn :math:`\\tau` with the encoders (else keep it fixed).
    loss: ``"info_nce"`` (symmetric) or ``"ratio"`` (the pooled ratio loss).
    noise: standard deviation of Gaussian noise added to each part while training, in units
        of the data's standard deviation (0 disables).
    """

    latent_dim: int = 16
    architecture: EncoderArchitecture = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    channels: int = 32
    activation: Activation = "relu"
    parts: Parts = "top_bottom"
    temperature: float = 0.1
    learn_temperature: bool = True
    loss: ContrastiveLoss = "info_nce"
    noise: float = 0.0

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(self.parts in PARTS, f"parts must be one of {PARTS}, got {self.parts!r}")
        check(
            0.01 <= self.temperature <= 10,
            f"temperature must be in [0.01, 10], got {self.temperature}",
        )
        check(self.loss in CONTRASTIVE_LOSSES, f"loss must be one of {CONTRASTIVE_LOSSES}")
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")


def split_parts(x: Tensor, kind: str, parts: Parts) -> tuple[Tensor, Tensor]:
    """The two parts of each example: ``(B, C, H, W)`` images by rows or columns, ``(B, D)``
    vectors by coordinates (see the module docstring)."""
    if kind == "image":
        h, w = x.shape[-2:]
        if parts == "top_bottom":
            return x[..., : h // 2, :], x[..., h // 2 :, :]
        return x[..., : w // 2], x[..., w // 2 :]
    d = x.shape[1]
    return x[:, : d // 2], x[:, d // 2 :]


class CLIP(GenerativeModel):
    """Two encoders aligned on the two parts of each example (see module docstring)."""

    family = "clip"
    capabilities = Capabilities(
        sample=False, log_prob="none", encode=True, decode=False, conditional="none"
    )
    description = "contrastive, two parts of an example aligned"
    task_notes = {
        "representation": "mean of the two parts' embeddings; retrieval both ways",
    }
    config_class = CLIPConfig
    default_train = {"epochs": 300, "batch_size": 512, "lr": 1e-3, "patience": 50}
    budgets = {
        "smoke": {"steps": 10, "batch_size": 128},
        "fast": {"epochs": 150},
        "full": {"epochs": 400, "patience": 100},
    }

    def __init__(self, config: CLIPConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.latent_dim = config.latent_dim
        shape = info.event_shape
        self.normalizer = AffineNormalizer(shape, per_feature=info.kind == "vector")
        probe = torch.zeros(1, *shape)
        part_a, part_b = split_parts(probe, info.kind, config.parts)
        if part_a.numel() == 0 or part_b.numel() == 0:
            raise ConfigError(f"clip: examples of shape {shape} cannot be cut into two parts")
        self.encoder_a, self.encoder_b = (
            build_encoder(
                tuple(part.shape[1:]),
                config.latent_dim,
                config.architecture,
                config.hidden,
                config.channels,
                config.activation,
            )
            for part in (part_a, part_b)
        )
        log_scale = torch.tensor(math.log(1 / config.temperature))
        if config.learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> Tensor:
        r""":math:`\tau = e^{-\lambda}` with :math:`\lambda \le \log 100`."""
        return self.log_scale.clamp(max=MAX_LOG_SCALE).neg().exp()

    def prepare(self, x_train: Tensor) -> None:
        self.normalizer.fit(x_train)

    def embed_parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unit embeddings :math:`(\\bar f(a), \\bar g(b))` of the two parts, each ``(batch, latent_dim)``."""
        self.check_input(x)
        return self._embed(self.normalizer(x))

    def _embed(self, u: Tensor) -> tuple[Tensor, Tensor]:
        a, b = split_parts(u, self.info.kind, self.config.parts)
        return F.normalize(self.encoder_a(a), dim=1), F.normalize(self.encoder_b(b), dim=1)

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """:math:`\\tfrac12 (\\bar f(a) + \\bar g(b))`, ``(batch, latent_dim)``."""
        self.check_context(context, len(x))
        a, b = self.embed_parts(x)
        return 0.5 * (a + b)

    @torch.no_grad()
    def retrieval(self, x: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
        """Top-k accuracy of finding each example's second part from its first (``ab``) and
        the reverse (``ba``) among all of ``x`` (:func:`genlab.stats.retrieval.retrieval_accuracy`)."""
        a, b = zip(*(self.embed_parts(chunk) for chunk in x.split(1024)), strict=True)
        return retrieval_accuracy(torch.cat(a), torch.cat(b), ks)

    def family_metrics(self, x_test: Tensor) -> dict[str, float]:
        return self.retrieval(x_test)

    def _loss(self, u: Tensor, gather: bool) -> Tensor:
        a, b = self._embed(u)
        kind, tau = self.config.loss, self.temperature
        return contrastive_loss(kind, a, b, tau, views=False, gather=gather)

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        u = gaussian_noise(self.normalizer(x), self.config.noise, generator)
        # under torch.distributed the loss sees the pairs of every rank's batch
        loss = self._loss(u, gather=True).mean()
        optimizers.minimize(loss)
        return {"loss": loss.detach(), "temperature": self.temperature.detach()}

    def validation_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        # local: a validation split is not sharded, so gathering would repeat its examples
        return self._loss(self.normalizer(x), gather=False)

    def validation_metrics(self, x_val: Tensor, generator: torch.Generator) -> dict[str, float]:
        scores = self.retrieval(x_val, ks=(1,))
        return {k: v for k, v in scores.items() if "chance" not in k}
