"""The optimizers of one model, behind the single call a training step needs."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from genlab.train.acceleration import outside_autocast
from genlab.train.distributed import average_gradients

LRSchedule = Literal["constant", "linear", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LRSchedule)


def lr_factor(schedule: LRSchedule, progress: float) -> float:
    r"""Multiplier of the initial learning rate after a fraction ``progress`` :math:`t \in [0, 1)` of the steps.

    ``"constant"``: 1; ``"linear"``: :math:`1 - t`; ``"cosine"``: :math:`\frac12(1 + \cos \pi t)`
    (Loshchilov & Hutter, "SGDR", ICLR 2017, arXiv:1608.03983, without restarts).
    """
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


class Optimizers:
    """Named optimizers; :meth:`minimize` is the one place a backward pass and a step happen.

    The trainer builds this from :meth:`GenerativeModel.configure_optimizers`; keeping the
    backward/step here is what lets it add gradient clipping or distributed gradient averaging
    (:mod:`genlab.train.distributed`) without any family knowing. Under data parallelism the
    trainer sets :attr:`batch_weight` to this rank's share of the global batch before each step.
    """

    def __init__(
        self,
        optimizers: dict[str, torch.optim.Optimizer],
        grad_clip: float | None = None,
        distributed: bool = False,
    ) -> None:
        self.optimizers = optimizers
        self.grad_clip = grad_clip
        self.distributed = distributed
        self.batch_weight = 1.0
        self.grad_norms: dict[str, Tensor] = {}

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimizers[name]

    def __iter__(self):  # noqa: ANN204
        return iter(self.optimizers.items())

    def set_lr_factor(self, factor: float) -> None:
        """Set every group's learning rate to ``factor`` times its initial one."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def parameters(self, name: str) -> list[Tensor]:
        return [p for group in self.optimizers[name].param_groups for p in group["params"]]

    def minimize(self, loss: Tensor, name: str = "main", *, retain_graph: bool = False) -> None:
        """``zero_grad``, ``loss.backward()``, optional clipping, then the named optimizer's step.

        Only the parameters of optimizer ``name`` are stepped; gradients that the loss leaves on
        other parameters are cleared at their own next ``minimize``. Under bf16 autocast the
        backward pass and the step run outside it (float32 gradients and updates).
        """
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        with outside_autocast(loss.device.type):
            loss.backward(retain_graph=retain_graph)
            if self.distributed:
                average_gradients(self.parameters(name), self.batch_weight)
            if self.grad_clip is not None:
                self.grad_norms[name] = nn.utils.clip_grad_norm_(
                    self.parameters(name), self.grad_clip
                )
            take_step = getattr(optimizer, "take_step", optimizer.step)  # FusedAdam's
            take_step()
