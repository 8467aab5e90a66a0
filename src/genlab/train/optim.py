"""The optimizers of one model, behind the single call a training step needs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from genlab.train.distributed import average_gradients


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
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused)


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
