r"""A run's steps fitted to a share of wall-clock time, fixed before it starts.

``genlab train --train-seconds S`` (``train_seconds=`` in :func:`genlab.fit`) fits one run
to ``S`` seconds of training steps, and ``genlab compare`` gives every family the same share
(``--train-seconds S``; the default at ``fast`` on large images, where the families' own
``fast`` runs take from a minute to an hour each). A run cut by the clock would end wherever the clock found it: before a
stage it needs (the VQ-VAE's prior, the autoguided copy), mid-way down a learning-rate decay,
and at a different step on every machine and every load. Instead the steps are fixed first,
from the measured time of a step, and the run is then an ordinary one of that many steps
(deterministic, resumable, its steps in ``config.json``):

.. math::
    n = \min\left(N,\ \max\left(1,\ \left\lfloor S / t \right\rfloor\right)\right),

where :math:`N` is the run's own number of steps (its ``steps``, or ``epochs`` times the
batches an epoch of the training split holds), :math:`t` the mean wall time of
:data:`TIMED_STEPS` training steps of a copy of the model on one batch, after
:data:`WARMUP_STEPS` untimed ones (first-call allocations; a family whose steps alternate,
the GAN's R1 penalty every few steps, is averaged over the cycle), and :math:`S` the share.
Every stage counted in training steps (the family's ``step_settings``) is scaled by
:math:`n / N` (at least 1), so that it comes at the same fraction of the shorter run.
Validations keep their spacing (``eval_every`` steps, or an epoch), so that their time shrinks
with the run's: spaced to keep their number, diffusion's 16 took 160 of a 226-second run
fitted to 60 s of steps. The share covers the steps alone: validation passes and the run's
pictures come on top, and the scorecard reports each family's measured seconds.
"""

from __future__ import annotations

import math
import time
from typing import Any

from genlab.data.dataset import Dataset
from genlab.errors import ConfigError
from genlab.models.base import GenerativeModel
from genlab.train.config import TrainConfig
from genlab.train.loop import schedule, validation_split
from genlab.train.threads import trial_step

WARMUP_STEPS = 2
TIMED_STEPS = 8


def step_seconds(
    model: GenerativeModel, data: Dataset, config: TrainConfig, seed: int = 0
) -> float:
    """The mean wall seconds of a training step of ``model`` on a batch of ``data`` (on a
    copy: :func:`~genlab.train.threads.trial_step`), at the current thread count."""
    with trial_step(model, data, config, seed) as run_step:
        for _ in range(WARMUP_STEPS):
            run_step()
        started = time.perf_counter()
        for _ in range(TIMED_STEPS):
            run_step()
        return (time.perf_counter() - started) / TIMED_STEPS


def run_steps(data: Dataset, config: TrainConfig, seed: int = 0) -> int:
    """The steps of a run of ``config`` on ``data`` (an epoch is the training split left
    after the validation split)."""
    train_idx, _ = validation_split(len(data.x_train), config.val_fraction, seed)
    return schedule(len(train_idx), config)[1]


def check_train_seconds(seconds: float | None) -> None:
    """A share must be a positive number of seconds (``inf``: the run's own steps), or ``None``."""
    if seconds is not None and not seconds > 0:
        raise ConfigError(
            f"train_seconds must be a positive number of seconds (inf: the run's own steps), "
            f"got {seconds}"
        )


def steps_within(
    seconds: float, step_time: float, model: GenerativeModel, steps: int
) -> dict[str, Any]:
    """The settings that fit a run of ``steps`` steps into ``seconds`` of steps taking
    ``step_time`` each (module docstring): ``steps``, and the family's ``step_settings``
    scaled alike; ``{}`` when the run already fits."""
    if seconds / step_time >= steps:  # also an infinite share
        return {}
    fitted = max(1, math.floor(seconds / step_time))
    ratio = fitted / steps
    settings: dict[str, Any] = {"steps": fitted}
    for name in type(model).step_settings:
        value = getattr(model.config, name)
        if value:  # None or 0: no stage to move
            settings[name] = max(1, round(value * ratio))
    return settings


def fitted_settings(
    model: GenerativeModel, data: Dataset, config: TrainConfig, seconds: float, seed: int = 0
) -> dict[str, Any]:
    """The settings that fit the run of ``model`` and ``config`` on ``data`` into ``seconds``
    of training steps (:func:`steps_within`, its step measured by :func:`step_seconds`);
    ``{}`` for a closed-form family or a run that already fits."""
    if model.fit_method == "closed_form":
        return {}
    steps = run_steps(data, config, seed)
    return steps_within(seconds, step_seconds(model, data, config, seed), model, steps)
