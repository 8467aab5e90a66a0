r"""All-gather that keeps gradients, so a contrastive loss sees the negatives of every rank.

Under data-parallel training each rank holds a local batch :math:`x_r` of :math:`B_r` rows. A
contrastive loss computed on the local batch alone contrasts each example with :math:`B_r - 1`
negatives; gathering the embeddings of every rank restores the :math:`\sum_r B_r - 1` of the
global batch, which is what the loss of a single process on the concatenated batch sees
(SimCLR, arXiv:2002.05709, section 2: "global BN" and large batches; CLIP, arXiv:2103.00020,
section 2.5). ``torch.distributed.all_gather`` itself cuts the graph: its outputs carry no
gradient back to the local rows. :class:`_AllGather` restores it.

Gradient convention. Rank :math:`r` computes a loss :math:`L_r` on its local queries against the
gathered keys :math:`X = [x_1; \dots; x_W]`. The gradient that reaches :math:`x_r` is
:math:`\sum_s \partial L_s / \partial x_r` (the gathered copy is used by every rank), so the
backward pass all-reduces (sums) the incoming gradient and keeps the slice of rank :math:`r`.
When the trainer then averages parameter gradients over ranks (as DDP does) the update is the
gradient of :math:`\frac1W \sum_s L_s`, which equals the single-process loss on the concatenated
batch when the ranks hold batches of equal size. Ranks may hold batches of different sizes
(the last batch of an epoch): the rows are padded to the largest for the collective and
trimmed afterwards.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _row_counts(x: Tensor, world: int) -> list[int]:
    """Rows held by each rank (one small collective)."""
    counts = torch.zeros(world, dtype=torch.long, device=x.device)
    mine = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    dist.all_gather_into_tensor(counts, mine)
    return counts.tolist()


class _AllGather(torch.autograd.Function):
    """Concatenate ``x`` of every rank along dim 0; backward sums gradients over ranks."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, counts: list[int], rank: int) -> Tensor:
        largest = max(counts)
        padded = x.new_zeros(largest, *x.shape[1:])
        padded[: x.shape[0]] = x
        gathered = x.new_empty(len(counts) * largest, *x.shape[1:])  # (W * B_max, ...)
        dist.all_gather_into_tensor(gathered, padded)
        ctx.counts, ctx.largest, ctx.rank = counts, largest, rank
        rows = gathered.view(len(counts), largest, *x.shape[1:])  # (W, B_max, ...)
        return torch.cat([rows[r, :n] for r, n in enumerate(counts)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        padded = grad.new_zeros(len(ctx.counts), ctx.largest, *grad.shape[1:])
        for r, piece in enumerate(grad.split(ctx.counts)):
            padded[r, : piece.shape[0]] = piece
        dist.all_reduce(padded, op=dist.ReduceOp.SUM)
        return padded[ctx.rank, : ctx.counts[ctx.rank]].clone(), None, None


def all_gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """The rows of ``x`` from every rank, differentiable, and the offset of this rank's rows.

    Arguments:
        x: ``(B_r, ...)`` this rank's rows.

    Returns:
        ``(X, offset)`` with ``X`` of shape ``(sum_r B_r, ...)`` in rank order and
        ``X[offset : offset + B_r]`` equal to ``x``. Without an initialised process group (or
        with one process) ``X`` is ``x`` itself and the offset is 0.
    """
    rank, world = distributed_world()
    if world == 1:
        return x, 0
    counts = _row_counts(x, world)
    return _AllGather.apply(x.contiguous(), counts, rank), sum(counts[:rank])
