r"""Vector quantisation: a codebook, nearest-neighbour assignment, straight-through gradients.

A grid of encoder outputs :math:`z_e \in \mathbb R^{d \times h \times w}` becomes a grid of
indices into a codebook :math:`\{e_1, \dots, e_K\} \subset \mathbb R^d`,

.. math::
    k_{ij} = \arg\min_k \lVert z_{e,ij} - e_k \rVert^2, \qquad z_{q,ij} = e_{k_{ij}},

and the decoder reads :math:`z_q`. The assignment has no gradient; the straight-through
estimator (:func:`straight_through`) copies the decoder's gradient at :math:`z_q` to
:math:`z_e` unchanged, so the codebook learns only from its own objective: the codebook loss
(:func:`genlab.objectives.codebook_loss`), or the exponential moving averages of
:func:`codebook_ema_update`, which set each code to the running mean of the encoder outputs
assigned to it (a k-means step per batch). Codes that nothing is assigned to stop moving; they
are revived by moving them onto random encoder outputs (:meth:`VectorQuantizer.revive_`) once
their running count falls below a threshold. :func:`code_usage` measures how much of the
codebook a set of assignments uses.

References:
    van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS
    2017, arXiv:1711.00937 (VQ-VAE; EMA update in its appendix A.1).
    Razavi, van den Oord & Vinyals, "Generating Diverse High-Fidelity Images with VQ-VAE-2",
    NeurIPS 2019, arXiv:1906.00446 (EMA update with Laplace smoothing).
    Dhariwal et al., "Jukebox: A Generative Model for Music", 2020, arXiv:2005.00341 (random
    restarts of codes whose usage falls below a threshold).
    Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through Stochastic
    Neurons", 2013, arXiv:1308.3432 (straight-through estimator).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    r"""``(N,)`` index of the nearest code of each row of ``z`` ``(N, d)`` in ``codebook`` ``(K, d)``.

    .. math::
        k_n = \arg\min_k \lVert z_n - e_k \rVert^2
        = \arg\min_k \left(\lVert e_k \rVert^2 - 2\, z_n^\top e_k\right)

    (:math:`\lVert z_n \rVert^2` does not depend on :math:`k`). Ties go to the smallest index.

    Example:
        >>> nearest_codes(torch.tensor([[0.9], [-2.0]]), torch.tensor([[0.0], [1.0], [-1.0]]))
        tensor([1, 2])
    """
    scores = codebook.square().sum(-1) - 2.0 * z @ codebook.T  # (N, K)
    return scores.argmin(-1)


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    r""":math:`z_e + \mathrm{sg}[z_q - z_e]`: the value of ``z_q``, the gradient of ``z_e``.

    The forward pass returns :math:`z_q`; the backward pass hands the gradient at the output to
    :math:`z_e` unchanged and none to :math:`z_q` (hence none to the codebook), as if the
    quantiser were the identity (Bengio et al., 2013; van den Oord et al., 2017, eq. 3).
    """
    return z_e + (z_q - z_e).detach()


def codebook_ema_update(
    counts: Tensor,
    sums: Tensor,
    batch_counts: Tensor,
    batch_sums: Tensor,
    decay: float,
    epsilon: float,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One EMA step of the codebook statistics and the codebook they define.

    With :math:`n_k` the number of encoder outputs assigned to code :math:`k` in the batch and
    :math:`s_k` their sum (van den Oord et al., 2017, appendix A.1):

    .. math::
        N_k \leftarrow \gamma N_k + (1 - \gamma)\, n_k, \qquad
        m_k \leftarrow \gamma m_k + (1 - \gamma)\, s_k, \qquad
        e_k = m_k / \tilde N_k, \qquad
        \tilde N_k = \frac{N_k + \epsilon}{n + K\epsilon}\, n, \quad n = \textstyle\sum_k N_k,

    the Laplace smoothing :math:`\tilde N_k > 0` keeping :math:`e_k` finite for a code that
    nothing has been assigned to (Razavi et al., 2019), while changing the counts' total not
    at all (:math:`\sum_k \tilde N_k = n`).

    Arguments:
        counts: ``(K,)`` running counts :math:`N_k`.
        sums: ``(K, d)`` running sums :math:`m_k`.
        batch_counts: ``(K,)`` this batch's :math:`n_k`.
        batch_sums: ``(K, d)`` this batch's :math:`s_k`.
        decay: :math:`\gamma \in [0, 1)`.
        epsilon: :math:`\epsilon > 0`.

    Returns:
        The new counts ``(K,)``, sums ``(K, d)`` and codebook ``(K, d)``.

    Example:
        >>> counts, sums, codes = codebook_ema_update(
        ...     torch.ones(2), torch.zeros(2, 1), torch.tensor([2.0, 0.0]),
        ...     torch.tensor([[4.0], [0.0]]), decay=0.5, epsilon=0.0)
        >>> counts.tolist(), sums.tolist(), codes.tolist()
        ([1.5, 0.5], [[2.0], [0.0]], [[1.3333333730697632], [0.0]])
    """
    counts = decay * counts + (1.0 - decay) * batch_counts
    sums = decay * sums + (1.0 - decay) * batch_sums
    total = counts.sum()
    smoothed = (counts + epsilon) / (total + len(counts) * epsilon) * total
    return counts, sums, sums / smoothed.unsqueeze(-1)


def code_usage(counts: Tensor) -> tuple[float, float]:
    r"""The fraction of the codebook in use, and the perplexity of the code histogram.

    With ``counts`` ``(K,)`` the assignments to each code and :math:`p_k` their shares: the
    fraction :math:`|\{k : p_k > 0\}| / K` and the perplexity :math:`\exp(-\sum_k p_k \log p_k)`
    (between 1, one code for everything, and :math:`K`, all codes equally often). Count over a
    whole data set, not one batch, which understates both.

    Example:
        >>> code_usage(torch.bincount(torch.tensor([0, 0, 1, 1]), minlength=4))
        (0.5, 2.0)
    """
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float((counts > 0).double().mean()), float((-(p * p.log()).sum()).exp())


class VectorQuantizer(nn.Module):
    r"""A codebook of ``K`` codes of size ``d``, with the running statistics of its EMA update.

    ``codebook`` is a parameter with ``update="loss"`` (trained by the codebook loss) and a
    buffer with ``update="ema"`` (set by :meth:`ema_update_`). The running counts
    :math:`N_k` (``counts``) are kept either way: they tell which codes are in use, for
    :meth:`revive_`. Counts start at 1 and sums at the initial codes, as though every code had
    been assigned once, so :math:`e_k = m_k / N_k` from the start.

    Arguments:
        codebook_size: :math:`K`.
        code_dim: :math:`d`.
        update: ``"ema"`` or ``"loss"``.

    Example:
        >>> vq = VectorQuantizer(8, 2)
        >>> indices, z_q = vq(torch.randn(3, 2, 4, 4))
        >>> indices.shape, z_q.shape
        (torch.Size([3, 4, 4]), torch.Size([3, 2, 4, 4]))
    """

    def __init__(self, codebook_size: int, code_dim: int, update: str = "ema") -> None:
        super().__init__()
        self.update = update
        initial = torch.empty(codebook_size, code_dim).uniform_(
            -1.0 / codebook_size, 1.0 / codebook_size
        )
        if update == "loss":
            self.codebook = nn.Parameter(initial)
        else:
            self.register_buffer("codebook", initial)
        self.register_buffer("counts", torch.ones(codebook_size))
        self.register_buffer("sums", initial.clone())

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    def embed(self, indices: Tensor) -> Tensor:
        """``(B, h, w)`` indices -> ``(B, d, h, w)`` codes."""
        return self.codebook[indices].movedim(-1, 1)

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, d, h, w)`` encoder outputs -> indices ``(B, h, w)`` and codes ``(B, d, h, w)``.

        The codes carry the codebook's gradient (for the codebook loss), not the encoder's:
        combine them with :func:`straight_through`. Codes are assigned in the codebook's
        precision (float32 under bf16 autocast too: near ties would flip in bf16).
        """
        b, d, h, w = z_e.shape
        flat = z_e.detach().movedim(1, -1).reshape(-1, d).to(self.codebook.dtype)  # (B h w, d)
        with torch.autocast(z_e.device.type, enabled=False):
            indices = nearest_codes(flat, self.codebook.detach()).view(b, h, w)
        return indices, self.embed(indices)

    def batch_statistics(self, z_e: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        """This batch's counts ``(K,)`` and sums ``(K, d)`` of encoder outputs per code."""
        flat = z_e.detach().movedim(1, -1).reshape(-1, z_e.shape[1]).to(self.sums.dtype)
        index = indices.flatten()
        counts = torch.bincount(index, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.sums).index_add_(0, index, flat)
        return counts, sums

    @torch.no_grad()
    def ema_update_(self, z_e: Tensor, indices: Tensor, decay: float, epsilon: float) -> None:
        """Update ``counts`` (and, with ``update="ema"``, ``sums`` and the codebook) from a batch.

        With ``update="loss"`` only the counts move (the running usage that :meth:`revive_`
        reads); the codebook is the optimiser's.
        """
        batch_counts, batch_sums = self.batch_statistics(z_e, indices)
        counts, sums, codebook = codebook_ema_update(
            self.counts, self.sums, batch_counts, batch_sums, decay, epsilon
        )
        self.counts.copy_(counts)
        if self.update == "ema":
            self.sums.copy_(sums)
            self.codebook.copy_(codebook)

    @torch.no_grad()
    def revive_(self, z_e: Tensor, threshold: float, generator: torch.Generator | None) -> int:
        r"""Move every code whose running count :math:`N_k` is below ``threshold`` onto a random
        encoder output of the batch ``z_e`` ``(B, d, h, w)``; returns how many moved.

        A revived code restarts its statistics as a code assigned once (:math:`N_k = 1`,
        :math:`m_k = e_k`), the Jukebox random restart (Dhariwal et al., 2020).
        """
        dead = (self.counts < threshold).nonzero().squeeze(1)
        if len(dead) == 0:
            return 0
        flat = z_e.detach().movedim(1, -1).reshape(-1, z_e.shape[1])  # (B h w, d)
        pick = torch.randint(len(flat), (len(dead),), generator=generator, device=flat.device)
        self.codebook[dead] = flat[pick].to(self.codebook.dtype)
        self.sums[dead] = self.codebook[dead]
        self.counts[dead] = 1.0
        return len(dead)

    def extra_repr(self) -> str:
        k, d = self.codebook.shape
        return f"codebook_size={k}, code_dim={d}, update={self.update!r}, bits={math.log2(k):.3g}"
