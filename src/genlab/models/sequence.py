r"""What every model of token sequences shares: the chain rule over tokens, sampling, prefixes.

A sequence family models text items (or windows, :mod:`genlab.data.text`) token by token,

.. math::
    p(w_1 \dots w_T) = \prod_{t=1}^{T} p(w_t \mid \langle\mathrm{end}\rangle, w_1 \dots w_{t-1}),

the end token standing for the start of every item. For items (``text_units = "lines"``) the
product runs to the item's end token, which is a prediction and counts; the padding after it is
none and never counts; and the last of the :math:`T` positions can only be the end token, so
:math:`p` is normalised over the strings that fit (tested by enumeration). A family supplies
the next-token logits of every position (:meth:`SequenceModel.logits`); this base class turns
them into ``log_prob``, the training loss, ancestral samples and exact completions of a prefix
(:mod:`genlab.samplers.autoregressive`).

**Units.** ``log_prob`` is the log-probability of the whole item in nats; evaluation reports the
negative log-likelihood per token, weighted by tokens over the whole split
(:func:`genlab.metrics.likelihood.token_scores`): :math:`\mathrm{NLL} = -\sum_i \log p(x_i) /
\sum_i |x_i|`, with :math:`|x_i|` the item's characters plus its end token, bits per character
:math:`\mathrm{NLL}/\log 2` and perplexity :math:`e^{\mathrm{NLL}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.data.dataset import END_TOKEN, PAD_TOKEN, DataInfo
from genlab.data.text import decode_tokens, encode_items
from genlab.errors import DataError, UnsupportedCapability
from genlab.models.base import Capabilities, GenerativeModel
from genlab.samplers import TokenStep, complete, prefix_length, sample_tokens

if TYPE_CHECKING:
    from genlab.train.optim import Optimizers


class SequenceModel(GenerativeModel):
    """Base class of the text families: subclasses implement :meth:`logits` (see module)."""

    data_kinds = ("text",)
    capabilities = Capabilities(
        sample=True, log_prob="exact", encode=False, decode=False, conditional="exact"
    )
    task_notes = {
        "generation": "ancestral, token by token",
        "density": "chain rule over tokens",
        "conditional": "completes a prefix",
    }

    def __init__(self, config: Any, info: DataInfo) -> None:
        super().__init__(config, info)
        self.n_tokens = len(info.vocabulary)
        self.length = info.event_shape[0]
        self.ends = info.text_units == "lines"

    # ------------------------------------------------------------------ what families supply

    def logits(self, inputs: Tensor) -> Tensor:
        """``(B, t, V)`` next-token logits after each of the ``inputs`` ``(B, t)``, ``t <= T``,
        whose first token is the end token (the start); position ``s`` may read ``inputs[:, :s+1]``
        only."""
        raise NotImplementedError

    def token_step(self, cache: bool = True) -> TokenStep:
        """The sampler's step (:data:`~genlab.samplers.autoregressive.TokenStep`). Default: the
        state is the history and each step recomputes the logits over it; a family with a
        cache overrides this (``cache=False`` must still give the recomputing step)."""

        def step(tokens: Tensor, history: Tensor | None) -> tuple[Tensor, Tensor]:
            history = tokens if history is None else torch.cat([history, tokens], dim=1)
            return self.logits(history)[:, -tokens.shape[1] :], history

        return step

    # ------------------------------------------------------------------ the likelihood

    def check_tokens(self, x: Tensor, what: str = "x") -> None:
        """Refuse tensors that are not token ids of this vocabulary (padding only after an end)."""
        self.check_input(x, what)
        if x.is_floating_point() or x.dtype == torch.bool:
            raise DataError(f"{self.family}: {what} must hold integer token ids, got {x.dtype}")
        if bool(((x < PAD_TOKEN) | (x >= self.n_tokens)).any()):
            raise DataError(
                f"{self.family}: {what} has token ids outside 0..{self.n_tokens - 1} (and "
                f"{PAD_TOKEN} for padding)"
            )
        ended = torch.cumsum((x == END_TOKEN) | (x == PAD_TOKEN), dim=1) > 0
        after = torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], dim=1)
        if self.ends and bool(((x != PAD_TOKEN) & after).any()):
            raise DataError(f"{self.family}: {what} has tokens after an item's end token")

    def _inputs(self, x: Tensor) -> Tensor:
        """``(B, T)`` the model's inputs: the start (end token), then ``x`` shifted right."""
        start = torch.full_like(x[:, :1], END_TOKEN)
        return torch.cat([start, x[:, :-1].clamp_min(0)], dim=1)

    def _constrained(self, logits: Tensor) -> Tensor:
        """Items: at the last of the ``T`` positions only the end token is possible."""
        if not self.ends or logits.shape[1] < self.length:
            return logits
        last = torch.full_like(logits[:, -1], -torch.inf)
        last[:, END_TOKEN] = 0.0
        return torch.cat([logits[:, :-1], last[:, None]], dim=1)

    def token_log_probs(self, x: Tensor) -> Tensor:
        """``(B, T)`` :math:`\\log p(w_t \\mid w_{<t})` of every token, 0 at padding."""
        log_p = F.log_softmax(self._constrained(self.logits(self._inputs(x))), dim=-1)
        picked = log_p.gather(-1, x.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        return picked.masked_fill(x == PAD_TOKEN, 0.0)

    def log_prob(self, x: Tensor, *, context: Tensor | None = None) -> Tensor:
        """``(B,)`` exact :math:`\\log p(x)` of each item (window) in nats."""
        self.check_context(context, len(x))
        self.check_tokens(x)
        return self.token_log_probs(x).sum(1)

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        cache: bool = True,
    ) -> Tensor:
        """``(n, T)`` int64 items drawn token by token (padded after the end token)."""
        self.check_context(context, n)
        tokens = torch.zeros(n, self.length, dtype=torch.long, device=self.device)
        return sample_tokens(self.token_step(cache), tokens, 0, end=self.ends, generator=generator)

    @torch.no_grad()
    def sample_conditional(
        self,
        x: Tensor,
        mask: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        cache: bool = True,
    ) -> Tensor:
        """``(n, batch, T)`` exact completions of each item's observed prefix.

        The mask must observe a prefix of positions (any length per example); an item whose
        prefix holds its end token is complete and is returned as it is.
        """
        self.check_context(context, len(x))
        self.check_tokens(x)
        positions = torch.arange(self.length, device=x.device)

        def fill(rows: Tensor, observed: Tensor, n: int) -> Tensor:
            start = prefix_length(observed.to(x.device), positions)
            if start is None:
                raise UnsupportedCapability(
                    f"{self.family}: completion is exact for a prefix (the first positions "
                    "observed); this mask observes positions after unobserved ones"
                )
            chains = rows.repeat(n, 1)  # (n * R, T): chain i * R + r completes row r
            out = sample_tokens(
                self.token_step(cache), chains, start, end=self.ends, generator=generator
            )
            return out[:, ~observed].view(n, len(rows), -1)

        return complete(x, mask, n, fill)

    def complete_text(
        self, prefixes: Sequence[str], n: int, *, generator: torch.Generator | None = None
    ) -> list[list[str]]:
        """``n`` completions of each prefix string (without its end), as strings."""
        vocabulary = self.info.vocabulary
        tokens = encode_items(prefixes, vocabulary, self.length)  # prefix, end, padding
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        for row, prefix in enumerate(prefixes):
            mask[row, : len(prefix)] = True
        out = self.sample_conditional(tokens.to(self.device), mask, n, generator=generator)
        return [decode_tokens(out[:, row].cpu(), vocabulary) for row in range(len(prefixes))]

    def decode_text(self, tokens: Tensor) -> list[str]:
        """Strings of ``(N, T)`` tokens (items without their end token)."""
        return decode_tokens(tokens.cpu(), self.info.vocabulary, self.info.text_units or "lines")

    # ------------------------------------------------------------------ training

    def training_step(
        self, x: Tensor, optimizers: Optimizers, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Minimise the negative log-likelihood per token of the batch (padding excluded)."""
        loss = -self.token_log_probs(x).sum() / (x != PAD_TOKEN).sum()
        optimizers.minimize(loss)
        return {"loss": loss.detach()}
