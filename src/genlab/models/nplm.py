r"""A neural probabilistic language model (Bengio et al., 2003): an MLP over a context window.

.. math::
    p(w_t \mid w_{t-c} \dots w_{t-1}) = \mathrm{softmax}\big(f([e(w_{t-c}); \dots;
    e(w_{t-1})])\big),

with a learned embedding :math:`e` of each token, the :math:`c` embeddings concatenated
(positions before the start are end tokens) and an MLP :math:`f` to the vocabulary's logits.
Every position of a batch is predicted in one pass (the windows are an ``unfold`` of the
sequence).

References:
    Bengio, Ducharme, Vincent & Jauvin, "A Neural Probabilistic Language Model", JMLR 3, 2003.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import check
from genlab.data.dataset import END_TOKEN, DataInfo
from genlab.models.sequence import SequenceModel
from genlab.nn import ACTIVATIONS, MLP, Activation


@dataclass(frozen=True)
class NPLMConfig:
    """Attributes:
    context: :math:`c`, the tokens the model reads before the one it predicts.
    embedding_dim: size of each token's embedding.
    hidden: hidden sizes of the MLP.
    activation: its non-linearity (Bengio et al. used tanh).
    dropout: dropout on the concatenated embeddings and the hidden layers' input.
    """

    context: int = 8
    embedding_dim: int = 24
    hidden: tuple[int, ...] = (256,)
    activation: Activation = "tanh"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(self.context >= 1, f"context must be >= 1, got {self.context}")
        check(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        check(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        check(self.activation in ACTIVATIONS, f"unknown activation {self.activation!r}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")


class NPLM(SequenceModel):
    """Bengio's MLP language model over a window of ``context`` tokens (see module)."""

    family = "nplm"
    description = "text: Bengio's neural language model, an MLP over a context window"
    config_class = NPLMConfig
    default_train = {"epochs": 100, "batch_size": 256, "lr": 2e-3, "patience": 5}
    budgets = {
        "smoke": {"steps": 40, "hidden": (32,), "embedding_dim": 8},
        "fast": {"epochs": 3, "patience": 1},
        "full": {"epochs": 100, "patience": 5},
    }

    def __init__(self, config: NPLMConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.embedding = nn.Embedding(self.n_tokens, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        width = config.context * config.embedding_dim
        self.mlp = MLP(width, self.n_tokens, config.hidden, config.activation)

    def logits(self, inputs: Tensor) -> Tensor:
        c = self.config.context
        windows = F.pad(inputs, (c - 1, 0), value=END_TOKEN).unfold(1, c, 1)  # (B, t, c)
        features = self.embedding(windows).flatten(2)  # (B, t, c * E)
        return self.mlp(self.dropout(features))  # (B, t, V)
