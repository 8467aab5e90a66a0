r"""Deterministic autoencoder, made generative in two stages.

Stage 1 trains an encoder :math:`E` and decoder :math:`D` on the squared error
:math:`\frac1D \lVert D(E(x)) - x \rVert^2` (in normalised units). Stage 2 fits a Gaussian mixture
to the training codes :math:`E(x_i)` after training, and :meth:`Autoencoder.sample` decodes draws
from it (the two-stage approach of Ghosh et al., 2020, "From Variational to Deterministic
Autoencoders", arXiv:1903.12436). The model has no density, so ``log_prob`` is unsupported.

With ``architecture="linear"`` (no non-linearity), the optimum spans the top-k principal subspace
(Baldi & Hornik, 1989), which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.models.base import CONV_IMAGE_BUDGETS, Capabilities, GenerativeModel
from genlab.nn import (
    ACTIVATIONS,
    Activation,
    AffineNormalizer,
    Architecture,
    build_decoder,
    build_encoder,
)
from genlab.nn.mixture_prior import GaussianMixturePrior
from genlab.objectives import mean_squared_error

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers


@dataclass(frozen=True)
class AutoencoderConfig:
    """Attributes:
    latent_dim: code size.
    architecture: ``"mlp"``, ``"conv"`` (images only) or ``"linear"`` (one linear map each way).
    hidden: hidden layer sizes of the MLP encoder (the decoder mirrors them).
    activation: non-linearity between layers.
    channels: channels of the first conv layer (doubling at each halving).
    prior_components: Gaussian mixture components fitted to the codes for sampling.
    """

    latent_dim: int = 8
    architecture: Architecture = "mlp"
    hidden: tuple[int, ...] = (256, 128)
    activation: Activation = "relu"
    channels: int = 32
    prior_components: int = 10

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(self.prior_components >= 1, "prior_components must be >= 1")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")


class Autoencoder(GenerativeModel):
    """Autoencoder with a Gaussian-mixture prior fitted on its codes (see module docstring)."""

    family = "ae"
    capabilities = Capabilities(
        sample=True, log_prob="none", encode=True, decode=True, conditional="none"
    )
    description = "autoencoder"
    task_notes = {
        "generation": "Gaussian mixture fitted on codes, two-stage",
    }
    config_class = AutoencoderConfig
    default_train = {"epochs": 300, "batch_size": 128, "lr": 1e-3, "patience": 30}
    budgets = {
        "smoke": {"steps": 40},
        "fast": {"epochs": 200},
        "full": {"epochs": 1000, "patience": 60},
    }
    large_image_budgets = CONV_IMAGE_BUDGETS

    def __init__(self, config: AutoencoderConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        shape = info.event_shape
        k = self.latent_dim = config.latent_dim
        self.normalizer = AffineNormalizer(shape, per_feature=info.kind == "vector")
        check(
            config.architecture != "conv" or info.kind == "image",
            "ae: architecture=conv needs image data",
        )
        arch, channels, activation = config.architecture, config.channels, config.activation
        self.encoder = build_encoder(shape, k, arch, config.hidden, channels, activation)
        self.decoder = build_decoder(k, shape, arch, config.hidden[::-1], channels, activation)
        self.prior = GaussianMixturePrior(config.prior_components, k)

    def prepare(self, x_train: Tensor) -> None:
        self.normalizer.fit(x_train)

    def upgrade_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A run saved before the prior was its own module (``prior_weights`` ...)."""
        return {
            key.replace("prior_", "prior.", 1) if key.startswith("prior_") else key: value
            for key, value in state.items()
        }

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        self.check_input(x, context=context)
        return self.encoder(self.normalizer(x))

    def decode(self, z: Tensor, *, context: Tensor | None = None) -> Tensor:
        self.check_context(context, len(z))
        return self.normalizer.inverse(self.decoder(z))

    def _loss(self, x: Tensor) -> Tensor:
        u = self.normalizer(x)
        return mean_squared_error(self.decoder(self.encoder(u)), u)

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        loss = self._loss(x).mean()
        optimizers.minimize(loss)
        return {"loss": loss.detach()}

    def validation_loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._loss(x)

    @torch.no_grad()
    def finish_training(self, x_train: Tensor, generator: torch.Generator) -> None:
        """Fit the code prior: a full-covariance Gaussian mixture on the training codes (with
        fewer codes than ``prior_components``, one component per code; the rest weigh 0)."""
        codes = torch.cat([self.encode(chunk) for chunk in x_train.split(1024)])
        self.prior.fit_(codes, generator)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        self.check_context(context, n)
        return self.decode(self.prior.sample(n, generator))
