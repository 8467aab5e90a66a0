r"""Parameter averaging: an exponential moving average (EMA) of a module's weights.

After update :math:`t = 1, 2, \dots` the average follows

.. math::
    \bar\theta_t = \beta_t \bar\theta_{t-1} + (1 - \beta_t)\,\theta_t, \qquad
    \beta_t = \min\!\left(\beta, \frac{1 + t}{10 + t}\right),

with :math:`\bar\theta_0 = \theta_0`. The warm-up :math:`\beta_t` (the ``num_updates`` rule of
TensorFlow's ``ExponentialMovingAverage``) lets the average forget the random initial weights
quickly, then settles at :math:`\beta` (an effective window of :math:`1/(1-\beta)` updates).
Averaging the generator's iterates damps the cycling of adversarial training around an
equilibrium and is the usual way GANs are sampled; diffusion models are sampled from averaged
weights too. :class:`AveragedCopies` holds the averages of any family's modules.

References:
    Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019,
    arXiv:1806.04498.
    Karras et al., "Progressive Growing of GANs", ICLR 2018, arXiv:1710.10196 (EMA generator).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn


def ema_decay(update: int, decay: float) -> float:
    r""":math:`\beta_t = \min(\beta, (1 + t) / (10 + t))` for update number :math:`t \ge 1`."""
    return min(decay, (1.0 + update) / (10.0 + update))


@torch.no_grad()
def ema_update_(averaged: nn.Module, current: nn.Module, decay: float) -> None:
    r"""One step :math:`\bar\theta \leftarrow \beta \bar\theta + (1 - \beta)\theta` over all parameters.

    Buffers (e.g. normalisation statistics) are copied, not averaged. The two modules must have
    the same structure (``averaged`` is usually a ``copy.deepcopy`` of ``current``).
    """
    for avg, cur in zip(averaged.parameters(), current.parameters(), strict=True):
        avg.lerp_(cur, 1.0 - decay)
    for avg, cur in zip(averaged.buffers(), current.buffers(), strict=True):
        avg.copy_(cur)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` without gradients, to hold averaged weights."""
    return copy.deepcopy(module).requires_grad_(False)


class AveragedCopies(nn.ModuleDict):
    r"""Frozen copies of some of a model's modules, holding the EMA of their weights.

    A model keeps one as a submodule (so checkpoints carry the averages, under
    ``<attribute>.<name>.``), calls :meth:`reset_` once training data is seen and
    :meth:`update_` after every optimiser step, and samples or evaluates with the copies.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> averaged = AveragedCopies({"net": net})
        >>> averaged.update_({"net": net}, update=1, decay=0.999)
    """

    def __init__(self, modules: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__({name: frozen_copy(m) for name, m in (modules or {}).items()})

    def track(self, name: str, module: nn.Module) -> None:
        """Start averaging ``module`` too, from a copy of its current weights."""
        self[name] = frozen_copy(module)

    @torch.no_grad()
    def reset_(self, modules: Mapping[str, nn.Module]) -> None:
        """Set every average to the current weights of its module."""
        for name, module in modules.items():
            self[name].load_state_dict(module.state_dict())

    @torch.no_grad()
    def update_(self, modules: Mapping[str, nn.Module], update: int, decay: float) -> None:
        r"""One EMA step of every average towards its module, :math:`\beta_t` = ``ema_decay(update, decay)``."""
        beta = ema_decay(update, decay)
        for name, module in modules.items():
            ema_update_(self[name], module, beta)
