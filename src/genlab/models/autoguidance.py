r"""Autoguidance: sampling a model guided away from a less trained copy of itself.

Karras et al. (2024) guide a diffusion model :math:`D` with a weaker version of itself
:math:`D_\text{weak}` whose errors are the model's own, larger: the guided prediction
:math:`(1 + w) D - w D_\text{weak}` pushes each step away from where the weak model would go,
which takes draws off the low-density regions where both err, without labels. The same
combination of log-probabilities, :math:`(1 + w) \log p(x_d \mid x_{<d}) - w \log
p_\text{weak}(x_d \mid x_{<d})` renormalised, guides an autoregressive model one coordinate at
a time (Li et al.'s "contrastive decoding" of an expert against an amateur).

Here the weak model is the model's own network as it stood at training step ``guide_step``,
copied and frozen then (no extra training): :class:`Autoguided` holds it as
``guide_network`` and says whether the weights a run selected had reached it. Guided draws have
no normalised density: ``log_prob``, codes and completions stay the model's, and
``autoguidance=0`` gives its own draws.

References:
    Karras, Aittala, Kynkäänniemi, Lehtinen, Aila & Laine, "Guiding a Diffusion Model with a
    Bad Version of Itself", NeurIPS 2024, arXiv:2406.02507.
    Li, Holtzman, Fried, Liang, Eisner, Hashimoto, Zettlemoyer & Lewis, "Contrastive Decoding:
    Open-ended Text Generation as Optimization", ACL 2023, arXiv:2210.15097.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from genlab.config import check
from genlab.nn.averaging import frozen_copy


def check_autoguidance(guide_step: int | None, autoguidance: float) -> None:
    """The config checks of ``guide_step`` and ``autoguidance`` (for ``__post_init__``)."""
    check(
        guide_step is None or guide_step >= 1,
        f"guide_step must be >= 1 or None, got {guide_step}",
    )
    check(autoguidance >= 0, f"autoguidance must be >= 0, got {autoguidance}")
    check(
        autoguidance == 0 or guide_step is not None,
        "autoguidance > 0 guides away from the copy taken at guide_step: set guide_step",
    )


class Autoguided:
    """What a family with autoguidance shares (a mixin of a
    :class:`~genlab.models.GenerativeModel`, whose config has ``guide_step`` and
    ``autoguidance``): the guiding copy, whether the selected weights reached it, the default
    weight, the caption note and the warning of a run selected before it.

    The family keeps ``steps``, a long buffer of the optimiser steps taken (saved with the
    weights, so a selected checkpoint's count is its own), calls :meth:`make_guide_copy` from
    ``__init__``, counts a step and calls :meth:`take_guide_copy_` after every training step,
    and :meth:`warn_if_unguided` from ``finish_training``.
    """

    config: Any
    family: str
    steps: Tensor
    guide_network: nn.Module | None

    def make_guide_copy(self, network: nn.Module) -> None:
        """``guide_network``: a frozen copy of ``network`` when ``guide_step`` is set (filled at
        that step), else ``None``."""
        guide_step = self.config.guide_step
        self.guide_network = None if guide_step is None else frozen_copy(network)

    def take_guide_copy_(self, network: nn.Module, step: int) -> None:
        """Copy ``network``'s weights into the guiding copy if ``step`` (the optimiser steps
        taken) is ``guide_step``."""
        if self.guide_network is not None and step == self.config.guide_step:
            self.guide_network.load_state_dict(network.state_dict())

    @property
    def has_guide_copy(self) -> bool:
        """Whether training took the guiding copy (it reached ``guide_step``)."""
        step = self.config.guide_step
        return self.guide_network is not None and int(self.steps) >= step

    def guide_copy(self) -> nn.Module:
        """The guiding copy of the network (``guide_step``), or a clear error without one."""
        check(
            self.has_guide_copy,
            f"{self.family}: autoguidance needs the copy of the network taken at guide_step "
            f"({self.config.guide_step}), and this model {self.missing_guide_copy()}: sample "
            "with autoguidance=0, or train with a guide_step below the steps trained",
        )
        return self.guide_network  # type: ignore[return-value]

    def autoguidance_weight(self, autoguidance: float | None) -> float:
        """The weight ``sample`` guides with: ``autoguidance``, or by default the config's where
        training got as far as the copy (0 otherwise)."""
        if autoguidance is None:
            return self.config.autoguidance if self.has_guide_copy else 0.0
        check(autoguidance >= 0, f"autoguidance must be >= 0, got {autoguidance}")
        return autoguidance

    @property
    def sample_note(self) -> str | None:
        """The autoguidance of the default samples, when they have it."""
        if not (self.config.autoguidance and self.has_guide_copy):
            return None
        return (
            f"autoguided: w = {self.config.autoguidance:g} away from the network at training "
            f"step {self.config.guide_step:,}; autoguidance=0 draws the model's own"
        )

    def missing_guide_copy(self) -> str:
        """Why there is no guiding copy, as the end of a sentence."""
        if self.guide_network is None:
            return "was trained without one (guide_step=None)"
        return f"was selected at training step {int(self.steps)}, before it"

    def warn_if_unguided(self) -> None:
        """Say so when the selected weights predate the guiding copy: samples are unguided."""
        if self.config.autoguidance and not self.has_guide_copy:
            warnings.warn(
                f"{self.family}: autoguidance={self.config.autoguidance} needs the copy of the "
                f"network taken at guide_step={self.config.guide_step}, and this model "
                f"{self.missing_guide_copy()}: its samples are unguided (train longer, or set "
                "a smaller guide_step)",
                stacklevel=3,
            )
