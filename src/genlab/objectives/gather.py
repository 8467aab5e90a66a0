r"""All-gather that keeps gradients, so a contrastive loss sees the negatives of every rank.

Under data-parallel training rank :math:`r` holds :math:`n_r` rows :math:`x_r` of a global batch
of :math:`n`. A contrastive loss computed on the local rows alone contrasts each example with
:math:`n_r - 1` negatives; gathering the embeddings of every rank restores the :math:`n - 1` of
the global batch, which is what one process on the concatenated batch sees (SimCLR,
arXiv:2002.05709, section 2.2, large batches over many devices; CLIP, arXiv:2103.00020,
section 2.5, each GPU scores its local batch against all embeddings).
``torch.distributed.all_gather`` itself cuts the graph: its outputs carry no gradient back to
the local rows. :class:`_AllGather` restores it.

Gradient convention, that of :mod:`genlab.train.distributed`: rank :math:`r` holds
:math:`n_r` of the :math:`n` examples of the global batch, its loss :math:`L_r` is the mean
over its own examples (contrasted with everyone's), and the trainer combines parameter
gradients as :math:`g = \sum_r \frac{n_r}{n} g_r`, so that the update follows
:math:`L = \sum_s \frac{n_s}{n} L_s`, the single-process loss on the concatenated batch. The
gathered rows :math:`X_r = x_r` enter every rank's loss, and
:math:`\partial L / \partial x_r = \sum_s \frac{n_s}{n} \partial L_s / \partial X_r`; since the
trainer will weight rank :math:`r` by :math:`n_r / n`, the backward pass hands :math:`x_r`

.. math::
    \frac{1}{n_r} \sum_s n_s \frac{\partial L_s}{\partial X_r}

(each rank scales its incoming gradient by its :math:`n_s`, one all-reduce sums them, rank
:math:`r` keeps its slice and divides by :math:`n_r`; the direct use of :math:`x_r` in rank
:math:`r`'s own loss needs nothing). With equal shards this is the plain sum
that data-parallel averaging expects. A loss that every rank computes whole on the gathered
rows (:math:`L_s = L`, the pooled ratio loss) comes out exact as well. Ranks may hold different
numbers of rows: they are padded to the largest for the collective and trimmed afterwards.
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
        n_local = ctx.stop - ctx.start
        total = grad.contiguous() * n_local  # (sum_r B_r, ...), the same shape on every rank
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.start : ctx.stop] / n_local, None, None


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
