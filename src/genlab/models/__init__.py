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
from genlab.models.gan import GAN
from genlab.models.pca import PCA

FAMILIES: dict[str, type[GenerativeModel]] = {
    PCA.family: PCA,
    Autoencoder.family: Autoencoder,
    GAN.family: GAN,
    BiGAN.family: BiGAN,
}

__all__ = [
    "FAMILIES",
    "LOG_PROB_KINDS",
    "TASKS",
    "Autoencoder",
    "BiGAN",
    "Capabilities",
    "GAN",
    "GenerativeModel",
    "LogProbKind",
    "PCA",
    "broadcast_mask",
    "family_class",
]


def family_class(name: str) -> type[GenerativeModel]:
    """The model class registered under ``name``."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]
