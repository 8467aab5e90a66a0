"""Data-parallel training on ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m genlab train ...`` starts N processes; each joins the process
group described by the environment (``gloo`` on CPU, ``nccl`` on GPU), builds the same model from
the same seed and loads the same data. Every global batch is split into N near-equal shards
(``index.tensor_split(N)[rank]``); after each backward pass the gradients of the optimizer being
stepped are combined as :math:`g = \\sum_r \\frac{n_r}{n} g_r` (one all-reduce of a flattened
buffer), which is the gradient of the global batch's mean loss. This is the synchronisation
``DistributedDataParallel`` performs, done in :meth:`Optimizers.minimize`, the one place every
update passes through, so that families with two players and two optimizers (GANs) need nothing
special. Rank 0 alone writes metrics, checkpoints and pictures; every rank's generator state is
gathered into the checkpoint so that a resumed run continues each rank's noise exactly.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Distributed:
    """This process's place in the process group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> Distributed:
    """The process group this process belongs to, if any."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        )
    return Distributed()


def init_from_env(use_cuda: bool) -> Distributed:
    """Join the group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...), once."""
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """This process is one of several that ``torchrun`` started (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_worker(code: int) -> NoReturn:
    """End a ``torchrun`` worker whose command has returned (and :func:`shutdown` has run):
    flush the output and the log, then leave by ``os._exit(code)``, skipping the interpreter's
    teardown and the C++ static destructors.

    On this 2-core machine under load, about one run in a hundred of a two-process
    ``genlab train`` lost rank 1 to SIGABRT ("terminate called without an active exception",
    a C++ thread object destroyed while its thread still ran) after its training had ended,
    and torchrun then killed rank 0 and reported the run as failed. Which library's thread it
    was is not known (gloo's issue 155 reports failures after a barrier followed by context
    destruction); nothing genlab needs runs after the command returns, since rank 0 writes
    every file of the run atomically before that.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def average_gradients(parameters: list[Tensor], weight: float) -> None:
    r"""Replace each rank's gradients by :math:`\sum_r w_r g_r` (``weight`` is this rank's :math:`w_r`)."""
    for p in parameters:
        if p.grad is None:  # every rank must contribute the same layout
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters]) * weight
    dist.all_reduce(flat)
    offset = 0
    for p in parameters:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def broadcast_state(module: nn.Module) -> None:
    """Copy rank 0's buffers into every rank (e.g. statistics fitted after training)."""
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def gather_generator_states(generator: torch.Generator) -> dict[str, Tensor]:
    """``{"train.<rank>": state}`` for every rank (collective: every rank must call it)."""
    ctx = current()
    state = generator.get_state()
    if not ctx.enabled:
        return {"train.0": state}
    states: list[Tensor | None] = [None] * ctx.world_size
    dist.all_gather_object(states, state)
    return {f"train.{rank}": s for rank, s in enumerate(states) if s is not None}
