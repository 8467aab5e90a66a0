"""Training hyper-parameters shared by every gradient-trained family."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genlab.config import check
from genlab.train.acceleration import PRECISIONS, Precision
from genlab.train.optim import LR_SCHEDULES, LRSchedule


@dataclass(frozen=True)
class TrainConfig:
    """Attributes:
    epochs: passes over the training split (exactly one of ``epochs`` and ``steps`` is set).
    steps: optimisation steps.
    batch_size: examples per step.
    lr: learning rate of the family's optimizer(s).
    weight_decay: L2 penalty of the optimizer.
    val_fraction: share of the training data held out for validation (model selection and
        early stopping never look at the test split). 0 disables validation. Closed-form
        fits select nothing and use all the training data.
    eval_every: steps between validations; ``None`` validates at the end of every epoch.
    patience: stop after this many validations without improvement; ``None`` never stops early.
    select_best: restore the weights with the best validation loss at the end.
    checkpoint_every: steps between checkpoints (one is always written at the end).
    checkpoint_seconds: also checkpoint when this many seconds of training have passed since
        the last checkpoint, so that a kill loses at most about this much work whatever a step
        costs; ``None`` checkpoints on steps alone. Checkpoints never change the numbers.
    log_every: steps between lines in ``metrics.jsonl``.
    grad_clip: clip the global gradient norm to this value; ``None`` does not clip.
    lr_schedule: ``"constant"``, or decay every optimizer's learning rate to 0 over the run,
        ``"linear"`` or ``"cosine"`` (see :func:`genlab.train.optim.lr_factor`).
    precision: ``"fp32"``, or ``"bf16"``: the training steps' forward passes under bfloat16
        autocast (:mod:`genlab.train.acceleration`).
    compile: run the family's networks through ``torch.compile`` during the training steps.
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    eval_every: int | None = None
    patience: int | None = None
    select_best: bool = True
    checkpoint_every: int = 500
    checkpoint_seconds: float | None = 60.0
    log_every: int = 1
    grad_clip: float | None = None
    lr_schedule: LRSchedule = "constant"
    precision: Precision = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        check(
            (self.epochs is None) != (self.steps is None),
            f"set exactly one of epochs and steps (got epochs={self.epochs}, steps={self.steps})",
        )
        for name in (
            "epochs",
            "steps",
            "batch_size",
            "eval_every",
            "patience",
            "checkpoint_every",
            "log_every",
        ):
            value = getattr(self, name)
            check(value is None or value >= 1, f"{name} must be a positive integer, got {value}")
        check(
            self.epochs is None or self.epochs <= 10**6,
            f"epochs={self.epochs} is absurd (max 1e6)",
        )
        check(self.steps is None or self.steps <= 10**9, f"steps={self.steps} is absurd (max 1e9)")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(math.isfinite(self.lr), f"lr must be finite, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(
            0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"
        )
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive")
        check(
            self.checkpoint_seconds is None or 0 < self.checkpoint_seconds < math.inf,
            f"checkpoint_seconds must be a positive number of seconds (or none), got "
            f"{self.checkpoint_seconds}",
        )
        check(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}",
        )
        check(
            self.precision in PRECISIONS,
            f"precision must be one of {PRECISIONS}, got {self.precision!r}",
        )
