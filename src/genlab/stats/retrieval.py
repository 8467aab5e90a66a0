r"""Cross-modal retrieval accuracy: does a query find its own partner among all candidates?

For paired embeddings :math:`(a_i, b_i)`, :math:`i = 1..N`, the query :math:`a_i` ranks every
candidate :math:`b_j` by the similarity :math:`\langle a_i, b_j \rangle`; its rank is the number
of candidates scored strictly higher than its partner,
:math:`r_i = |\{j : \langle a_i, b_j \rangle > \langle a_i, b_i \rangle\}|`, and

.. math::
    \text{top-}k\ \text{accuracy} = \frac1N \sum_i \mathbf 1[r_i < k],

whose chance level is :math:`k / N`. Both directions are reported (:math:`a \to b` and
:math:`b \to a`), as in CLIP's image-to-text and text-to-image retrieval (Radford et al.,
arXiv:2103.00020, section 3.1.4 and table 13).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from genlab.errors import DataError

CHUNK = 1024


def retrieval_ranks(queries: Tensor, candidates: Tensor, *, normalize: bool = True) -> Tensor:
    """``(N,)`` rank :math:`r_i` of candidate ``i`` for query ``i`` (0 = retrieved first).

    Arguments:
        queries: ``(N, dim)`` embeddings; row ``i``'s partner is ``candidates[i]``.
        candidates: ``(N, dim)`` embeddings.
        normalize: compare by cosine similarity (else by inner product).
    """
    if queries.dim() != 2 or queries.shape != candidates.shape:
        raise DataError(
            f"retrieval needs two (N, dim) arrays of the same shape, got {tuple(queries.shape)} "
            f"and {tuple(candidates.shape)}"
        )
    if normalize:
        queries, candidates = F.normalize(queries, dim=1), F.normalize(candidates, dim=1)
    ranks = []
    for start in range(0, len(queries), CHUNK):  # bounded memory: a chunk of queries at a time
        scores = queries[start : start + CHUNK] @ candidates.T  # (chunk, N)
        rows = torch.arange(scores.shape[0], device=scores.device)
        own = scores[rows, start + rows].unsqueeze(1)  # from the same product: no rounding gap
        ranks.append((scores > own).sum(1))
    return torch.cat(ranks)


def retrieval_accuracy(
    a: Tensor, b: Tensor, ks: Sequence[int] = (1, 5), *, normalize: bool = True
) -> dict[str, float]:
    r"""Top-:math:`k` retrieval accuracy in both directions, and its chance level.

    Arguments:
        a: ``(N, dim)`` embeddings of the first parts.
        b: ``(N, dim)`` embeddings of the second parts, row ``i`` paired with ``a[i]``.
        ks: the :math:`k` to report.
        normalize: compare by cosine similarity.

    Returns:
        ``{"retrieval_top{k}_ab": ..., "retrieval_top{k}_ba": ..., "retrieval_chance_top{k}":
        k / N}`` for each ``k``: ``ab`` queries with ``a`` and retrieves among ``b``.
    """
    a_to_b = retrieval_ranks(a, b, normalize=normalize)
    b_to_a = retrieval_ranks(b, a, normalize=normalize)
    out: dict[str, float] = {}
    for k in ks:
        out[f"retrieval_top{k}_ab"] = float((a_to_b < k).double().mean())
        out[f"retrieval_top{k}_ba"] = float((b_to_a < k).double().mean())
        out[f"retrieval_chance_top{k}"] = min(k / len(a), 1.0)
    return out
