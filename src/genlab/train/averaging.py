r"""Parameter averaging: an exponential moving average (EMA) of a module's weights.

After update :math:`t = 1, 2, \dots` the average follows

.. math::
    \bar\theta_t = \beta_t \bar\theta_{t-1} + (1 - \beta_t)\,\theta_t, \qquad
    \beta_t = \min\!\left(\beta, \frac{1 + t}{10 + t}\right),

with :math:`\bar\theta_0 = \theta_0`. The warm-up :math:`\beta_t` (the ``num_updates`` rule of
TensorFlow's ``ExponentialMovingAverage``) lets the average forget the random initial weights
quickly, then settles at :math:`\beta` (an effective window of :math:`1/(1-\beta)` updates).
Averaging the generator's iterates damps the cycling of adversarial training around an
equilibrium and is the usual way GANs are sampled.

References:
    Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019,
    arXiv:1806.04498.
    Karras et al., "Progressive Growing of GANs", ICLR 2018, arXiv:1710.10196 (EMA generator).
"""

from __future__ import annotations

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
