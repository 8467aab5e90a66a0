r"""A small causal transformer (GPT-style) with a key/value cache for sampling.

Pre-norm blocks (Radford et al., 2019; nanoGPT's layout):

.. math::
    h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)), \qquad
    h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h)), \qquad
    \mathrm{Attn}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_h}} + M\Big) V,

with the causal mask :math:`M_{ts} = 0` for :math:`t - c < s \le t` and :math:`-\infty`
otherwise (:math:`c` the attention window, ``window``; by default the whole sequence), learned
token and position embeddings and a linear head to the vocabulary's logits.

**The cache.** At position :math:`t` attention needs the keys and values of positions
:math:`\le t` only, and those of earlier positions never change (the mask hides later ones), so
sampling can keep them (:class:`KVCache`) and feed one new token per step: :math:`O(t)` work per
token instead of a full pass over the prefix, :math:`O(t^2)`. Logits are the same either way up
to floating-point rounding (tested: same tokens).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762.
    Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (GPT-2).
    Karpathy, nanoGPT (github.com/karpathy/nanoGPT), the layout followed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class KVCache:
    """Keys and values of the positions seen so far, per layer: ``(B, heads, t, head_dim)``."""

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Positions cached (0 when empty)."""
        return self.keys[0].shape[2] if self.keys else 0


def attention_mask(queries: int, keys: int, window: int | None, device: torch.device) -> Tensor:
    r"""``(queries, keys)`` bool, True where query :math:`t` may attend key :math:`s`.

    The queries are the last ``queries`` of the ``keys`` positions: query :math:`t` (absolute
    position ``keys - queries + t``) sees keys :math:`s \le` its position, and within ``window``
    of it when given.
    """
    position = torch.arange(keys - queries, keys, device=device)[:, None]
    key = torch.arange(keys, device=device)[None, :]
    allowed = key <= position
    if window is not None:
        allowed &= key > position - window
    return allowed


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; :meth:`forward` appends to a :class:`KVCache` when given."""

    def __init__(self, dim: int, heads: int, dropout: float, window: int | None) -> None:
        super().__init__()
        self.heads, self.window, self.dropout = heads, window, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # (B, T, D) each
        q, k, v = (u.view(b, t, self.heads, d // self.heads).transpose(1, 2) for u in (q, k, v))
        # (B, nh, T, hs)
        if cache is not None:
            if len(cache.keys) > layer:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        mask = attention_mask(t, k.shape[2], self.window, x.device)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """A pre-norm transformer block: attention, then a 4x-wide GELU MLP, each residual."""

    def __init__(self, dim: int, heads: int, dropout: float, window: int | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads, dropout, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), cache, layer))
        return x + self.dropout(self.mlp(self.norm2(x)))


class CausalTransformer(nn.Module):
    """Tokens ``(B, T)`` -> next-token logits ``(B, T, V)``; position :math:`t` sees tokens
    :math:`\\le t` (within ``window``).

    Arguments:
        vocabulary: number of tokens :math:`V`.
        length: the most positions a sequence can have (the position embeddings).
        dim, heads, n_layers: width, attention heads and depth.
        dropout: on the residual branches, attention weights and embeddings.
        window: attention window :math:`c` (``None``: every earlier position).

    Example:
        >>> net = CausalTransformer(5, 8, dim=16, heads=2, n_layers=1)
        >>> net(torch.zeros(3, 4, dtype=torch.long)).shape
        torch.Size([3, 4, 5])
    """

    def __init__(
        self,
        vocabulary: int,
        length: int,
        *,
        dim: int = 64,
        heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.0,
        window: int | None = None,
    ) -> None:
        super().__init__()
        self.length = length
        self.token_embedding = nn.Embedding(vocabulary, dim)
        self.position_embedding = nn.Embedding(length, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, window) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocabulary)

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        """Logits for each of the ``tokens``; with a cache, they continue the cached positions."""
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        h = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for layer, block in enumerate(self.blocks):
            h = block(h, cache, layer)
        return self.head(self.norm(h))  # (B, T, V)
