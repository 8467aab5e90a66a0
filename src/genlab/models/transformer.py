r"""A small causal transformer over characters, with a key/value cache for sampling.

.. math::
    p(w_t \mid w_{<t}) = \mathrm{softmax}\big(\mathrm{GPT}(\langle\mathrm{end}\rangle, w_1
    \dots w_{t-1})_t\big),

a nanoGPT-sized stack of pre-norm blocks (:class:`~genlab.nn.transformer.CausalTransformer`)
whose attention reads every earlier position of the item, or the last ``window`` of them.
Sampling keeps each layer's keys and values (:class:`~genlab.nn.transformer.KVCache`) and
feeds one token per step; ``sample(..., cache=False)`` recomputes the whole prefix at each step
instead (the same tokens, tested; the benchmark measures the difference).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762.
    Karpathy, nanoGPT (github.com/karpathy/nanoGPT).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.models.sequence import SequenceModel
from genlab.nn.transformer import CausalTransformer, KVCache
from genlab.samplers import TokenStep


@dataclass(frozen=True)
class TransformerConfig:
    """Attributes:
    dim: width of the residual stream.
    heads: attention heads (``dim`` must be a multiple).
    n_layers: transformer blocks.
    dropout: on residual branches, attention weights and embeddings.
    window: the attention window (earlier tokens a position reads); ``None``: all of them.
    """

    dim: int = 96
    heads: int = 4
    n_layers: int = 3
    dropout: float = 0.1
    window: int | None = None

    def __post_init__(self) -> None:
        check(self.dim >= 1 and self.heads >= 1, "dim and heads must be >= 1")
        check(self.dim % self.heads == 0, f"dim ({self.dim}) must be a multiple of heads")
        check(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.window is None or self.window >= 1, "window must be >= 1 (or None)")


class Transformer(SequenceModel):
    """A causal transformer language model over characters (see module)."""

    family = "transformer"
    description = "text: a small causal transformer, nanoGPT-style"
    task_notes = {
        **SequenceModel.task_notes,
        "generation": "ancestral, token by token, with a key/value cache",
    }
    config_class = TransformerConfig
    default_train = {"epochs": 100, "batch_size": 128, "lr": 2e-3, "patience": 4}
    budgets = {
        "smoke": {"steps": 40, "dim": 16, "heads": 2, "n_layers": 1},
        "fast": {"epochs": 2, "patience": 1},
        "full": {"epochs": 100, "patience": 4, "lr_schedule": "cosine"},
    }

    def __init__(self, config: TransformerConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.net = CausalTransformer(
            self.n_tokens,
            self.length,
            dim=config.dim,
            heads=config.heads,
            n_layers=config.n_layers,
            dropout=config.dropout,
            window=config.window,
        )

    def logits(self, inputs: Tensor) -> Tensor:
        return self.net(inputs)

    def token_step(self, cache: bool = True) -> TokenStep:
        """With ``cache``, each step feeds only the new tokens and extends the key/value cache."""
        if not cache:
            return super().token_step(cache)

        def step(tokens: Tensor, state: KVCache | None) -> tuple[Tensor, KVCache]:
            state = KVCache() if state is None else state
            return self.net(tokens, state), state

        return step
