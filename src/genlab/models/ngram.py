r"""Character n-gram counts with hierarchical (interpolated Dirichlet) smoothing: closed form.

The order-:math:`n` model predicts a token from the :math:`n - 1` before it (the start of an
item padded with end tokens). Its probabilities are counts smoothed towards the order below,
down to the uniform distribution:

.. math::
    p_1(w) = \frac{c(w) + \beta / V}{c(\cdot) + \beta}, \qquad
    p_j(w \mid h_j) = \frac{c(h_j, w) + \beta\, p_{j-1}(w \mid h_{j-1})}{c(h_j) + \beta},

where :math:`h_j` is the last :math:`j - 1` tokens, :math:`h_{j-1}` its last :math:`j - 2`,
:math:`c(h, w)` the training count of :math:`w` after :math:`h`, :math:`c(h) = \sum_w c(h, w)`
and :math:`\beta > 0` the concentration (``smoothing``). Each level is a normalised mixture
of the counts' frequencies and the level below, so every :math:`p_j` is normalised and no token
has probability 0 (MacKay & Peto's hierarchical Dirichlet language model; :math:`\beta \to 0`
gives maximum likelihood). Fitting is counting (``fit_method = "closed_form"``); counts are
dense tables of :math:`V^j` entries.

References:
    MacKay & Peto, "A hierarchical Dirichlet language model", Natural Language Engineering 1(3),
    1995.
    Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language Modeling", 1998.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.config import check
from genlab.data.dataset import END_TOKEN, PAD_TOKEN, DataInfo
from genlab.models.sequence import SequenceModel

MAX_TABLE = 1 << 25  # entries of the largest count table (V^n): 128 MiB of float32


@dataclass(frozen=True)
class NGramConfig:
    """Attributes:
    order: :math:`n`: the model reads the :math:`n - 1` tokens before the one it predicts
        (1: unigram, 2: bigram).
    smoothing: the concentration :math:`\\beta > 0` towards the order below.
    """

    order: int = 3
    smoothing: float = 1.0

    def __post_init__(self) -> None:
        check(self.order >= 1, f"order must be >= 1, got {self.order}")
        check(self.smoothing > 0, f"smoothing must be positive, got {self.smoothing}")


class NGram(SequenceModel):
    """Smoothed character n-gram counts (see module)."""

    family = "ngram"
    description = "text: character n-gram counts, hierarchical smoothing"
    task_notes = {**SequenceModel.task_notes, "density": "closed-form counts, chain rule"}
    config_class = NGramConfig
    fit_method = "closed_form"
    budgets = {"smoke": {}, "fast": {}, "full": {}}

    def __init__(self, config: NGramConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        v = self.n_tokens
        check(
            v**config.order <= MAX_TABLE,
            f"ngram: order {config.order} needs a table of {v}^{config.order} counts; at most "
            f"{MAX_TABLE} fit (lower the order)",
        )
        for j in range(1, config.order + 1):  # counts_j: (V^(j-1) contexts, V)
            self.register_buffer(f"counts_{j}", torch.zeros(v ** (j - 1), v))

    def _context_index(self, inputs: Tensor, j: int) -> Tensor:
        """``(B, t)`` the index :math:`\\sum_i w_i V^i` of the last ``j - 1`` tokens up to each
        position of ``inputs`` (end tokens before the start)."""
        if j == 1:
            return torch.zeros_like(inputs)
        padded = F.pad(inputs, (j - 2, 0), value=END_TOKEN)
        windows = padded.unfold(1, j - 1, 1)  # (B, t, j - 1), oldest token first
        powers = self.n_tokens ** torch.arange(j - 1, device=inputs.device)
        return (windows * powers).sum(-1)

    def logits(self, inputs: Tensor) -> Tensor:
        """``(B, t, V)`` :math:`\\log p_n(w \\mid h)` (normalised, hence valid logits)."""
        beta = self.config.smoothing
        probs = torch.full(
            (*inputs.shape, self.n_tokens), 1.0 / self.n_tokens, device=inputs.device
        )
        for j in range(1, self.config.order + 1):
            counts = getattr(self, f"counts_{j}")[self._context_index(inputs, j)]  # (B, t, V)
            probs = (counts + beta * probs) / (counts.sum(-1, keepdim=True) + beta)
        return probs.log()

    @torch.no_grad()
    def fit_closed_form(self, x_train: Tensor, generator: torch.Generator) -> None:
        """Count every (context, token) pair of the training tokens (padding excluded)."""
        self.check_tokens(x_train, "x_train")
        inputs, counted = self._inputs(x_train), x_train != PAD_TOKEN
        v = self.n_tokens
        for j in range(1, self.config.order + 1):
            pairs = self._context_index(inputs, j) * v + x_train.clamp_min(0)  # (N, T)
            table = getattr(self, f"counts_{j}")
            table.copy_(torch.bincount(pairs[counted], minlength=table.numel()).view_as(table))
