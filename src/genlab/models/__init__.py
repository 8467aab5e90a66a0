"""Model families behind one protocol. Adding a family = one new module + one line here."""

from __future__ import annotations

from genlab.errors import ConfigError
from genlab.models.autoencoder import Autoencoder
from genlab.models.base import (
    LOG_PROB_KINDS,
    TASKS,
    Capabilities,
    GenerativeModel,
    LogProbKind,
    broadcast_mask,
)
from genlab.models.bigan import BiGAN
from genlab.models.clip import CLIP
from genlab.models.flow import Flow
from genlab.models.gan import GAN
from genlab.models.pca import PCA
from genlab.models.simclr import SimCLR
from genlab.models.vae import VAE

FAMILIES: dict[str, type[GenerativeModel]] = {
    PCA.family: PCA,
    Autoencoder.family: Autoencoder,
    SimCLR.family: SimCLR,
    CLIP.family: CLIP,
    VAE.family: VAE,
    Flow.family: Flow,
    GAN.family: GAN,
    BiGAN.family: BiGAN,
}

__all__ = [
    "CLIP",
    "FAMILIES",
    "GAN",
    "LOG_PROB_KINDS",
    "PCA",
    "TASKS",
    "VAE",
    "Autoencoder",
    "BiGAN",
    "Capabilities",
    "Flow",
    "GenerativeModel",
    "LogProbKind",
    "SimCLR",
    "broadcast_mask",
    "family_class",
]


def family_class(name: str) -> type[GenerativeModel]:
    """The model class registered under ``name``."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]
