"""A family that takes ``context=``, to test the protocol's side-information path end to end.

``ClassGaussian`` models :math:`p(x \\mid y) = \\mathcal N(x; \\mu_y, \\mathrm{diag}\\,\\sigma_y^2)`,
one diagonal Gaussian per class label, trained by gradient descent on :math:`-\\log p(x \\mid y)`.
Its conditionals are exact (the coordinates are independent given the label). No real family
takes context yet (the conditioning issue adds them); this one pins the path from labelled data
through the trainer to the model, and the conformance suite's checks of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import DataError
from genlab.models import FAMILIES, Capabilities, GenerativeModel
from genlab.samplers import LatentGenerator, complete
from genlab.train.optim import Optimizers


@dataclass(frozen=True)
class ClassGaussianConfig:
    """Attributes:
    n_classes: number of labels (the labels are 0 .. n_classes - 1).
    """

    n_classes: int = 10

    def __post_init__(self) -> None:
        check(self.n_classes >= 1, f"n_classes must be >= 1, got {self.n_classes}")


class ClassGaussian(GenerativeModel):
    family = "class-gaussian"
    capabilities = Capabilities(
        sample=True, log_prob="exact", encode=False, decode=False, conditional="exact",
        posterior="mcmc", context=True,
    )  # fmt: skip
    config_class = ClassGaussianConfig
    description = "one diagonal Gaussian per label (a test fixture)"
    default_train = {"steps": 300, "batch_size": 128, "lr": 0.1}
    budgets = {"smoke": {"steps": 20}, "fast": {}, "full": {}}

    def __init__(self, config: ClassGaussianConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.loc = nn.Parameter(torch.zeros(config.n_classes, info.n_features))
        self.log_scale = nn.Parameter(torch.zeros(config.n_classes, info.n_features))
        self.prepared_with: Tensor | None = None

    def _normal(self, context: Tensor | None) -> torch.distributions.Normal:
        if context is None:
            raise DataError(f"{self.family} models p(x | y): pass the labels as context=")
        return torch.distributions.Normal(self.loc[context], self.log_scale[context].exp())

    def prepare(self, x_train: Tensor, *, context: Tensor | None = None) -> None:
        self.prepared_with = context
        with torch.no_grad():
            self.loc.copy_(x_train.flatten(1).mean(0).expand_as(self.loc))

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        self.check_input(x, context=context)
        return self._normal(context).log_prob(x.flatten(1)).sum(1)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, context: Tensor | None = None
    ) -> Tensor:
        self.check_context(context, n)
        normal = self._normal(context)
        eps = torch.randn(normal.loc.shape, generator=generator, device=normal.loc.device)
        return (normal.loc + normal.scale * eps).view(n, *self.info.event_shape)

    @torch.no_grad()
    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        self.check_input(x, context=context)
        self._normal(context)  # refuses a missing context

        def fill(rows: Tensor, observed: Tensor, n: int, *, context: Tensor) -> Tensor:
            drawn = self.sample(n * len(rows), generator=generator, context=context.repeat(n))
            return drawn.view(n, len(rows), -1)[:, :, ~observed]

        return complete(x, mask, n, fill, context=context)

    def latent_generator(self, context: Tensor | None = None) -> LatentGenerator:
        """:math:`x = \\mu_y + \\sigma_y \\odot z`: the model itself, given each row's label."""
        self._normal(context)  # refuses a missing context

        def generate(z: Tensor, rows: Tensor) -> Tensor:
            labels = context.to(z.device)[rows]
            x = self.loc[labels] + self.log_scale[labels].exp() * z
            return x.view(-1, *self.info.event_shape)

        return LatentGenerator(self.info.n_features, generate, self.loc.device)

    def training_step(
        self,
        x: Tensor,
        optimizers: Optimizers,
        generator: torch.Generator,
        *,
        context: Tensor | None = None,
    ) -> dict[str, Tensor]:
        loss = -self.log_prob(x, context=context).mean()
        optimizers.minimize(loss)
        return {"loss": loss.detach()}

    def validation_loss(
        self, x: Tensor, generator: torch.Generator, *, context: Tensor | None = None
    ) -> Tensor:
        return -self.log_prob(x, context=context)


@contextmanager
def registered(cls: type[GenerativeModel]) -> Iterator[type[GenerativeModel]]:
    """``cls`` in the family registry for the duration of a test."""
    FAMILIES[cls.family] = cls
    try:
        yield cls
    finally:
        del FAMILIES[cls.family]
