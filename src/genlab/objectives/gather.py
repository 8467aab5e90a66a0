r"""All-gather that keeps gradients, so a contrastive loss sees the negatives of every rank.

Under data-parallel training each rank holds a local batch :math:`x_r` of :math:`B_r` rows. A
contrastive loss computed on the local batch alone contrasts each example with :math:`B_r - 1`
negatives; gathering the embeddings of every rank restores the :math:`\sum_r B_r - 1` of the
global batch, which is what the loss of a single process on the concatenated batch sees
(SimCLR, arXiv:2002.05709, section 2.2, large batches over many devices; CLIP,
arXiv:2103.00020, section 2.5, each GPU scoring its local batch against all embeddings). ``torch.distributed.all_gather`` itself cuts the graph: its outputs carry no
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
    counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    return [int(c) for c in counts]


class _AllGather(torch.autograd.Function):
    """Concatenate ``x`` of every rank along dim 0; backward sums gradients over ranks."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, counts: list[int], rank: int) -> Tensor:
        padded = x.new_zeros(max(counts), *x.shape[1:])  # all_gather needs equal shapes
        padded[: x.shape[0]] = x
        rows = [torch.empty_like(padded) for _ in counts]  # W x (B_max, ...)
        dist.all_gather(rows, padded)
        ctx.start, ctx.stop = sum(counts[:rank]), sum(counts[: rank + 1])
        return torch.cat([row[:n] for row, n in zip(rows, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        total = grad.contiguous().clone()  # (sum_r B_r, ...), the same shape on every rank
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.start : ctx.stop], None, None


def all_gather_with_grad(*tensors: Tensor) -> tuple[tuple[Tensor, ...], int]:
    """The rows of each tensor from every rank, differentiable, and this rank's offset.

    Several tensors with the same number of rows travel in one collective.

    Arguments:
        tensors: ``(B_r, ...)`` this rank's rows, one or more tensors.

    Returns:
        ``((X_1, ...), offset)`` with each ``X_k`` of shape ``(sum_r B_r, ...)`` in rank order
        and ``X_k[offset : offset + B_r]`` equal to ``tensors[k]``. Without an initialised
        process group (or with one process) the tensors come back as they are, offset 0.

    Example:
        >>> (u, v), offset = all_gather_with_grad(torch.ones(2, 3), torch.zeros(2, 5))
        >>> u.shape, v.shape, offset
        (torch.Size([2, 3]), torch.Size([2, 5]), 0)
    """
    rank, world = distributed_world()
    if world == 1:
        return tensors, 0
    rows = tensors[0].shape[0]
    if any(t.shape[0] != rows for t in tensors):
        raise ValueError("all_gather_with_grad: the tensors must have the same number of rows")
    counts = _row_counts(tensors[0], world)
    flat = torch.cat([t.flatten(1) for t in tensors], dim=1)  # (B_r, sum of sizes)
    gathered = _AllGather.apply(flat, counts, rank)  # (sum_r B_r, sum of sizes)
    pieces = gathered.split([t[0].numel() for t in tensors], dim=1)
    return tuple(p.view(-1, *t.shape[1:]) for p, t in zip(pieces, tensors, strict=True)), sum(
        counts[:rank]
    )
