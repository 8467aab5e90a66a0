"""The optimizers of one model, behind the single call a training step needs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from genlab.train.distributed import average_gradients


class FusedAdam(torch.optim.Adam):
    r"""``torch.optim.Adam(fused=True)`` whose :meth:`step` calls the fused kernel directly.

    The update is torch's (Kingma & Ba, 2015, arXiv:1412.6980):
    :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`,
    :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
    :math:`\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)` with the
    bias-corrected :math:`\hat m, \hat v`, computed by the same kernel, with the same state and
    ``state_dict``. The generic ``step`` regroups the parameters by device and dtype and checks
    its options on every call (about 0.1 ms on CPU, 2% of a small VAE's step); this one does so
    only when it must: the first step (state creation), several groups, devices or dtypes, a
    missing gradient, tensor hyper-parameters or the options the shortcut does not cover fall
    back to ``torch.optim.Adam.step``. Step hooks run either way (torch wraps every ``step``).
    """

    def step(self, closure=None):  # noqa: ANN001, ANN201 (torch's signature)
        shortcut = self._shortcut() if closure is None else None
        if shortcut is None:
            return super().step(closure)
        group, params, grads = shortcut
        states = [self.state[p] for p in params]
        steps = [s["step"] for s in states]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params,
                grads,
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=group["betas"][0],
                beta2=group["betas"][1],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
            )
        return None

    def _shortcut(self) -> tuple[dict, list[Tensor], list[Tensor]] | None:
        """(group, params, grads) when the direct call applies, else None."""
        if len(self.param_groups) != 1:
            return None
        group = self.param_groups[0]
        if not group["fused"] or group["amsgrad"] or group["capturable"]:
            return None
        if group["differentiable"] or group["decoupled_weight_decay"]:
            return None
        if any(isinstance(group[k], Tensor) for k in ("lr", "eps", "weight_decay")):
            return None
        if any(isinstance(b, Tensor) for b in group["betas"]) or not group["params"]:
            return None
        params = group["params"]
        grads = [p.grad for p in params]
        first = params[0]
        for p, g in zip(params, grads, strict=True):
            if g is None or g.is_sparse or "step" not in self.state.get(p, ()):
                return None
            if p.device != first.device or p.dtype != first.dtype or g.dtype != p.dtype:
                return None
        return group, params, grads


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


def adam(
    params: Iterable[nn.Parameter],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all parameters) where torch has one."""
    params = [p for p in params if p.requires_grad]
    fused = all(p.is_floating_point() for p in params) and all(
        p.device.type in ("cpu", "cuda") for p in params
    )
    if fused:
        return FusedAdam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


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
        other parameters are cleared at their own next ``minimize``.
        """
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        if self.distributed:
            average_gradients(self.parameters(name), self.batch_weight)
        if self.grad_clip is not None:
            self.grad_norms[name] = nn.utils.clip_grad_norm_(self.parameters(name), self.grad_clip)
        optimizer.step()
