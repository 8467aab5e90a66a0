r"""BiGAN / ALI: a GAN that also learns an encoder, by showing the discriminator (data, code) pairs.

An encoder :math:`E` maps data to codes and the generator :math:`G` maps codes to data. The
discriminator sees joint pairs, :math:`(x, E(x))` with :math:`x \sim p` against
:math:`(G(z), z)` with :math:`z \sim \mathcal N(0, I_k)`, and :math:`E` and :math:`G` are
trained together to fool it. The two joint distributions can only match if :math:`E` inverts
:math:`G` (:math:`E = G^{-1}` almost everywhere at the optimum, Donahue et al., Theorem 2), so
:math:`E` learns a representation without any reconstruction loss.

Everything else is the :class:`~genlab.models.gan.GAN`'s: the same games (``loss``), penalties,
optimisers, diagnostics and weight averaging (with two-layer MLPs of 256, lr :math:`5\cdot10^{-4}`
and 1,000 steps by default, see :class:`BiGANConfig`); the encoder is averaged with the generator, and
``encode``/``sample``/``decode`` use the averaged networks. The encoder player's loss is the
generator loss with the roles swapped, ``generator(-D(x, E(x)))`` (see
:mod:`genlab.objectives.adversarial`).

References:
    Donahue, Krähenbühl & Darrell, "Adversarial Feature Learning", ICLR 2017, arXiv:1605.09782.
    Dumoulin et al., "Adversarially Learned Inference", ICLR 2017, arXiv:1606.00704.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.models.base import Capabilities
from genlab.models.gan import GAN, GANConfig
from genlab.nn import MLP
from genlab.objectives.adversarial import ADVERSARIAL_LOSSES

IMAGE_FEATURES = 128


@dataclass(frozen=True)
class BiGANConfig(GANConfig):
    """The :class:`~genlab.models.gan.GANConfig` fields; ``latent_dim`` is also the code size.

    The defaults differ from the GAN's in the MLPs, two layers of 256 (with the GAN's four of
    128, the encoder of a digits BiGAN learned no better codes than its initial random one).
    ``conditional`` is refused: a BiGAN models p(x) alone (the class-conditional GAN is
    ``gan`` with ``conditional=true``).
    """

    hidden: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            not self.conditional,
            "bigan: conditional=true is not supported: a BiGAN models p(x) alone; for p(x | y) "
            "use gan (or vae, flow) with conditional=true",
        )


class JointDiscriminator(nn.Module):
    """:math:`D(x, z)`: features of ``x`` concatenated with ``z``, then an MLP to one output.

    Arguments:
        x_features: ``(B, *event_shape) -> (B, n_features)``.
        n_features: its output size.
        latent_dim: size of ``z``.
        hidden: hidden sizes of the joint MLP.
        activation: its non-linearity.
    """

    def __init__(
        self,
        x_features: nn.Module,
        n_features: int,
        latent_dim: int,
        hidden: tuple[int, ...],
        activation: str,
    ) -> None:
        super().__init__()
        self.x_features = x_features
        self.joint = MLP(n_features + latent_dim, 1, hidden, activation)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.joint(torch.cat([self.x_features(x), z], dim=1))  # (B, 1)


class BiGAN(GAN):
    """BiGAN/ALI: generator, encoder and a joint discriminator (see module docstring)."""

    family = "bigan"
    capabilities = Capabilities(
        sample=True,
        log_prob="none",
        encode=True,
        decode=True,
        conditional="mcmc",
        posterior="mcmc",
    )
    description = "BiGAN/ALI"
    task_notes = {
        "generation": "the averaged generator",
        "representation": "encoder learned adversarially",
        "conditional": "as `gan`, proposals centred at the encoder's code",
        "posterior": "as `gan`",
    }
    config_class = BiGANConfig
    # Measured on digits (scripts/bigan_digits.py): the codes' linear-probe accuracy peaks after
    # about 1,000 steps at lr 5e-4 and slowly degrades after, while the GAN's lr 2e-3 degrades it.
    default_train = {**GAN.default_train, "steps": 1_000, "lr": 5e-4}
    budgets = {
        **GAN.budgets,
        "fast": {"steps": 2_000, "architecture": "mlp"},
        "full": {"steps": 2_000},
    }
    # 28x28 digits: the GAN's conv pair (linear output), longer: the encoder and the joint
    # discriminator make a slower game (real MNIST, fast, README: 0.73 confidently classified
    # samples on seed 0 at the GAN's 5,000 steps, 0.80 on three seeds at 8,000, 0.84 at 12,000)
    large_image_budgets = {
        **GAN.large_image_budgets,
        "fast": {**GAN.large_image_budgets["fast"], "steps": 12_000},
        "full": {**GAN.large_image_budgets["full"], "steps": 20_000},
    }

    def __init__(self, config: BiGANConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.encoder_net = self.data_features(self.latent_dim)
        self.averaged.track("encoder", self.encoder_net)

    def build_discriminator(self) -> nn.Module:
        cfg = self.config
        if self.conv:
            features = nn.Sequential(self.data_features(IMAGE_FEATURES), nn.LeakyReLU(0.2))
            n_features = IMAGE_FEATURES
        else:
            features, n_features = nn.Flatten(), self.info.n_features
        return JointDiscriminator(
            features, n_features, self.latent_dim, cfg.hidden, cfg.activation
        )

    def generator_player(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_net, "encoder": self.encoder_net}

    def critic(self, u: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """``(B,)`` discriminator outputs on (normalised data, code) pairs (``labels``: always
        ``None``, a BiGAN models p(x) alone)."""
        return self.discriminator(u, z).squeeze(-1)

    def real_inputs(self, u: Tensor) -> tuple[Tensor, ...]:
        return (u, self.encoder_net(u))

    def fake_inputs(self, z: Tensor, labels: Tensor | None = None) -> tuple[Tensor, ...]:
        return (self.generator_net(z), z)

    def encoder_loss(self, real: Tensor) -> Tensor:
        """The encoder wants its pairs :math:`(x, E(x))` taken for samples: ``generator(-D)``."""
        game = ADVERSARIAL_LOSSES[self.config.loss]
        return game.generator(-self.critic(*self.real_inputs(real)))

    def latent_proposal(self, u: Tensor) -> Tensor:
        """The averaged encoder's codes :math:`E(u)` (unobserved values set to 0 by the caller)."""
        return self.averaged["encoder"](u)

    def encode(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B, latent_dim)`` codes :math:`E(x)` of the averaged encoder."""
        self.check_input(x, context=context)
        return self.averaged["encoder"](self.normalizer(x))
