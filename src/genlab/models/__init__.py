"""Model families behind one protocol. Adding a family = one new module + one line here."""

from __future__ import annotations

from genlab.errors import ConfigError
from genlab.models.autoencoder import Autoencoder
from genlab.models.autoregressive import Autoregressive
from genlab.models.base import (
    CONDITIONAL_KINDS,
    LOG_PROB_KINDS,
    TASKS,
    Capabilities,
    ConditionalKind,
    GenerativeModel,
    LogProbKind,
    MCMCSizes,
    Task,
)
from genlab.models.bigan import BiGAN
from genlab.models.clip import CLIP
from genlab.models.diffusion import Diffusion
from genlab.models.flow import Flow
from genlab.models.gan import GAN
from genlab.models.hvae import HVAE
from genlab.models.ngram import NGram
from genlab.models.nplm import NPLM
from genlab.models.pca import PCA
from genlab.models.sequence import SequenceModel
from genlab.models.simclr import SimCLR
from genlab.models.transformer import Transformer
from genlab.models.vae import VAE
from genlab.models.vqvae import VQVAE

FAMILIES: dict[str, type[GenerativeModel]] = {
    PCA.family: PCA,
    Autoencoder.family: Autoencoder,
    SimCLR.family: SimCLR,
    CLIP.family: CLIP,
    VAE.family: VAE,
    VQVAE.family: VQVAE,
    HVAE.family: HVAE,
    Flow.family: Flow,
    GAN.family: GAN,
    BiGAN.family: BiGAN,
    Autoregressive.family: Autoregressive,
    NGram.family: NGram,
    NPLM.family: NPLM,
    Transformer.family: Transformer,
    Diffusion.family: Diffusion,
}

__all__ = [
    "CLIP",
    "CONDITIONAL_KINDS",
    "FAMILIES",
    "GAN",
    "HVAE",
    "LOG_PROB_KINDS",
    "PCA",
    "TASKS",
    "VAE",
    "VQVAE",
    "Autoencoder",
    "Autoregressive",
    "BiGAN",
    "Capabilities",
    "ConditionalKind",
    "Diffusion",
    "Flow",
    "GenerativeModel",
    "NGram",
    "NPLM",
    "SequenceModel",
    "Transformer",
    "LogProbKind",
    "MCMCSizes",
    "SimCLR",
    "Task",
    "capability_table",
    "family_class",
]


def family_class(name: str) -> type[GenerativeModel]:
    """The model class registered under ``name``."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def capability_table() -> list[dict[str, str]]:
    """One row per family: its name and, per task (:data:`TASKS`), how it does it, in words.

    A cell is the task's kind (:meth:`Capabilities.describe`) with the family's note in
    brackets, or ``"—"``; the last, ``context``, says whether the family can model
    :math:`p(x \\mid y)` given side information. ``genlab families --markdown`` prints these
    rows as README's table.
    """
    rows = []
    for name, cls in FAMILIES.items():
        row = {"family": f"`{name}` ({cls.description})" if cls.description else f"`{name}`"}
        for task in TASKS:
            kind = cls.capabilities.describe(task.name)
            note = cls.task_notes.get(task.name)
            row[task.name] = "—" if kind is None else f"{kind} ({note})" if note else kind
        note = cls.task_notes.get("context")
        row["context"] = (
            "—" if not cls.capabilities.context else f"yes ({note})" if note else "yes"
        )
        rows.append(row)
    return rows
