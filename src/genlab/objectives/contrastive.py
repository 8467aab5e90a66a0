r"""Contrastive losses: InfoNCE (CPC, CLIP), NT-Xent (SimCLR) and the plain ratio loss.

Pairs :math:`(u_i, v_i)` show the same thing (two augmented views of one image, the top and the
bottom half of one digit); pairs :math:`(u_i, v_j)`, :math:`i \ne j`, do not. With embeddings
:math:`f(u_i)`, :math:`g(v_j)` the losses score the similarity matrix

.. math::
    M_{ij} = \frac{\langle f(u_i), g(v_j) \rangle}{\tau},

where the embeddings are scaled to unit length first (``normalize=True``, cosine similarity, as
in SimCLR and CLIP) and :math:`\tau > 0` is the temperature. Each loss returns what the
caller's batch gives it: per-example values ``(batch,)`` for the cross-entropies, a scalar for
the pooled ratio. Its value depends on the number of candidates :math:`N` (InfoNCE is at most
:math:`\log N` at chance), so losses of different batch sizes are not comparable.

Distributed training: when ``torch.distributed`` is initialised and ``gather=True`` (the
default), every loss gathers the embeddings of all ranks with
:func:`~genlab.objectives.gather.all_gather_with_grad` and contrasts each local example with
the negatives of the global batch, so that the average of the ranks' losses (and, after the
usual averaging of gradients, the update) equals that of a single process on the concatenated
batch. The gather is a collective: every rank must make the same call. Pass ``gather=False``
for data every rank holds whole (a validation split that is not sharded), where gathering
would repeat each example as its own negative.

References:
    van den Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive Coding",
    arXiv:1807.03748 (InfoNCE).
    Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual
    Representations", arXiv:2002.05709 (SimCLR, NT-Xent).
    Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
    arXiv:2103.00020 (CLIP: symmetric InfoNCE, learnable temperature).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from genlab.errors import ConfigError, DataError
from genlab.objectives.gather import all_gather_with_grad, distributed_world

ContrastiveLoss = Literal["info_nce", "ratio"]
CONTRASTIVE_LOSSES: tuple[str, ...] = get_args(ContrastiveLoss)


def _gathered(u: Tensor, v: Tensor, gather: bool) -> tuple[Tensor, Tensor, int]:
    """``(all_u, all_v, offset)``: every rank's rows when ``gather``, else the local ones."""
    if not gather:
        return u, v, 0
    (all_u, all_v), offset = all_gather_with_grad(u, v)
    return all_u, all_v, offset


def _embeddings(u: Tensor, v: Tensor, normalize: bool) -> tuple[Tensor, Tensor]:
    if u.dim() != 2 or u.shape != v.shape:
        raise DataError(
            f"contrastive loss: u and v must be (batch, dim) of the same shape, got "
            f"{tuple(u.shape)} and {tuple(v.shape)}"
        )
    if u.shape[0] < 1:
        raise DataError("contrastive loss: empty batch")
    if normalize:
        return F.normalize(u, dim=1), F.normalize(v, dim=1)
    return u, v


def info_nce(
    u: Tensor,
    v: Tensor,
    temperature: float | Tensor = 0.1,
    *,
    symmetric: bool = True,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    r"""InfoNCE: softmax cross-entropy of each positive pair against the batch, both directions.

    .. math::
        \ell_i^{u \to v} = -\log \frac{e^{M_{ii}}}{\sum_{j=1}^{N} e^{M_{ij}}}, \qquad
        \ell_i^{v \to u} = -\log \frac{e^{M_{ii}}}{\sum_{j=1}^{N} e^{M_{ji}}}, \qquad
        \ell_i = \tfrac12 \left(\ell_i^{u \to v} + \ell_i^{v \to u}\right)

    (only :math:`\ell_i^{u \to v}` when ``symmetric=False``, the one-sided CPC loss).
    :math:`\log N - \mathbb E[\ell^{u \to v}]` is a lower bound on the mutual information
    :math:`I(u; v)` (CPC, section 2.3). The symmetric form is CLIP's loss.

    Arguments:
        u: ``(batch, dim)`` embeddings :math:`f(u_i)`.
        v: ``(batch, dim)`` embeddings :math:`g(v_i)`; row ``i`` is the positive of ``u[i]``.
        temperature: :math:`\tau > 0`, a float or a scalar tensor (learnable in CLIP).
        symmetric: average the two directions.
        normalize: scale the embeddings to unit length (cosine similarity).
        gather: under ``torch.distributed``, contrast with the negatives of every rank.

    Returns:
        ``(batch,)`` per-example losses :math:`\ell_i` in nats.

    Example:
        >>> u = torch.eye(3)
        >>> info_nce(u, u, 0.1).shape
        torch.Size([3])
    """
    u, v = _embeddings(u, v, normalize)
    all_u, all_v, offset = _gathered(u, v, gather)
    targets = offset + torch.arange(u.shape[0], device=u.device)
    loss = F.cross_entropy(u @ all_v.T / temperature, targets, reduction="none")  # (B,)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(v @ all_u.T / temperature, targets, reduction="none"))
    return loss


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float | Tensor = 0.5,
    *,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    r"""NT-Xent, SimCLR's normalised temperature-scaled cross-entropy over :math:`2N` views.

    The :math:`2N` views :math:`z_1, \dots, z_{2N}` (first views then second views) score
    :math:`s_{ab} = \langle z_a, z_b \rangle / \tau`; view :math:`a` has one positive, the
    other view :math:`p(a)` of its example, and :math:`2N - 2` negatives, every view of every
    other example. Self-similarity :math:`s_{aa}` is excluded from the denominator:

    .. math::
        \ell(a) = -\log \frac{e^{s_{a, p(a)}}}{\sum_{b \ne a} e^{s_{ab}}}, \qquad
        \ell_i = \tfrac12 \left(\ell(i) + \ell(N + i)\right),

    so that :math:`\frac1N \sum_i \ell_i` is SimCLR's
    :math:`\mathcal L = \frac{1}{2N} \sum_k [\ell(2k-1, 2k) + \ell(2k, 2k-1)]` (arXiv:2002.05709,
    eq. 1 and Algorithm 1).

    Arguments:
        z1: ``(batch, dim)`` projections of the first views.
        z2: ``(batch, dim)`` projections of the second views, row ``i`` of the same example.
        temperature: :math:`\tau > 0`.
        normalize: scale to unit length (the paper's cosine similarity).
        gather: under ``torch.distributed``, contrast with the views of every rank.

    Returns:
        ``(batch,)`` per-example losses :math:`\ell_i` in nats.
    """
    z1, z2 = _embeddings(z1, z2, normalize)
    all_z1, all_z2, offset = _gathered(z1, z2, gather)
    n, b = all_z1.shape[0], z1.shape[0]
    local = offset + torch.arange(b, device=z1.device)
    keys = torch.cat([all_z1, all_z2])  # (2N, dim): first views, then second views
    logits = torch.cat([z1, z2]) @ keys.T / temperature  # (2B, 2N)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * b, device=z1.device), torch.cat([local, n + local])] = True
    logits = logits.masked_fill(is_self, -torch.inf)  # a view is not its own negative
    targets = torch.cat([n + local, local])  # the other view of the same example
    return F.cross_entropy(logits, targets, reduction="none").view(2, b).mean(0)


def ratio_loss(
    u: Tensor,
    v: Tensor,
    temperature: float | Tensor = 0.1,
    *,
    normalize: bool = True,
    gather: bool = True,
) -> Tensor:
    r"""The plain ratio loss: positive scores over negative scores, pooled over the batch.

    .. math::
        \mathcal L = -\log \frac{\sum_i e^{M_{ii}}}{\sum_{i \ne j} e^{M_{ij}}}
        = -\log \sum_i e^{M_{ii}} + \log \sum_{i \ne j} e^{M_{ij}}.

    The literal ratio :math:`\sum_i M_{ii} / \sum_{i \ne j} M_{ij}` is not a usable objective:
    cosine similarities change sign, so its denominator can vanish. The scores are therefore
    the positive density-ratio critic :math:`e^{M_{ij}}` of CPC (arXiv:1807.03748, eq. 4).
    Unlike :func:`info_nce`, which normalises each row (each positive competes with the
    negatives of its own example), the ratio pools all pairs, so the other pairs can carry the
    numerator while one pair stays apart: its global minimum is the aligned regular simplex, as
    InfoNCE's, but gradient descent can stop with a pair anti-aligned (a spurious minimum that
    the tests exhibit), which is why InfoNCE is the default. The pooled sum is symmetric in
    ``u`` and ``v``. Under ``torch.distributed`` every rank computes the loss of the whole
    gathered batch.

    Arguments:
        u: ``(batch, dim)`` embeddings; ``batch >= 2`` (there must be negatives).
        v: ``(batch, dim)`` embeddings; row ``i`` is the positive of ``u[i]``.
        temperature: :math:`\tau > 0`.
        normalize: scale to unit length.
        gather: under ``torch.distributed``, pool the pairs of every rank.

    Returns:
        The scalar loss of the batch (it is not a sum over examples).
    """
    u, v = _embeddings(u, v, normalize)
    u, v, _ = _gathered(u, v, gather)
    n = u.shape[0]
    if n < 2:
        raise DataError("ratio_loss: needs at least 2 pairs (the negatives are the other pairs)")
    logits = u @ v.T / temperature  # (N, N)
    positive = torch.eye(n, dtype=torch.bool, device=u.device)
    return logits[~positive].logsumexp(0) - logits.diagonal().logsumexp(0)


def contrastive_loss(
    kind: ContrastiveLoss,
    u: Tensor,
    v: Tensor,
    temperature: float | Tensor,
    *,
    views: bool,
    gather: bool = True,
) -> Tensor:
    """The loss ``kind`` as ``(batch,)`` per-example values, for the families' training steps.

    ``views=True`` means ``u`` and ``v`` are two views of one input (SimCLR: :func:`nt_xent`
    over :math:`2N` views); otherwise two parts or modalities (CLIP: symmetric
    :func:`info_nce`). The ratio loss uses the cross matrix :math:`\\langle u_i, v_j \\rangle`
    in both cases and its scalar is broadcast. A batch of a single pair (the last batch of an
    epoch can be one) has no negatives: every loss is then 0 with zero gradient, as InfoNCE's
    :math:`\\log 1` already is.
    """
    if kind not in CONTRASTIVE_LOSSES:
        raise ConfigError(f"unknown contrastive loss {kind!r}; choose one of {CONTRASTIVE_LOSSES}")
    if kind == "info_nce":
        fn = nt_xent if views else info_nce
        return fn(u, v, temperature, gather=gather)
    if u.shape[0] < 2 and (not gather or distributed_world()[1] == 1):
        return 0 * (u.sum(1) + v.sum(1))  # keeps the graph, so backward still runs
    return ratio_loss(u, v, temperature, gather=gather).expand(u.shape[0])
