r"""Held-out perplexity against context length: counts run out of data, learned models do not.

A character model reads the :math:`c` characters before the one it predicts. On the census
names this experiment measures held-out NLL per character (tokens weighted over the test split,
the end token counting; :func:`genlab.metrics.likelihood.token_scores`) against :math:`c` for

- n-gram counts of order :math:`c + 1` (smoothing chosen on the validation items), whose
  contexts become too rare to count as :math:`c` grows;
- Bengio's MLP over a window of :math:`c` characters;
- the causal transformer with an attention window of :math:`c` characters,

beside the uniform (:math:`\log V`) and unigram baselines (the 1-gram, :math:`c = 0`).
Learned models share statistics between similar contexts through their embeddings, so they
keep improving where counts stop.

References:
    Bengio, Ducharme, Vincent & Jauvin, "A Neural Probabilistic Language Model", JMLR 2003.
    Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language Modeling", 1998.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genlab.api import fit
from genlab.data import load
from genlab.data.dataset import Dataset
from genlab.experiments.base import Budget, ExperimentResult
from genlab.metrics.likelihood import token_scores
from genlab.report.figures import PALETTE, new_figure
from genlab.train.loop import validation_split

NAME = "perplexity-vs-context"
CLAIM = (
    "Held-out NLL per character falls with the context a model reads; counts stop improving "
    "when contexts get rare, while learned models keep using longer contexts."
)
DATA = {"smoke": "first-names", "full": "names"}
SMOOTHINGS = (0.3, 1.0, 3.0, 10.0)
CONTEXTS = {"smoke": (1, 4), "full": (1, 2, 4, 8)}
NGRAM_ORDERS = {"smoke": (1, 2, 3), "full": (1, 2, 3, 4, 5)}
NEURAL: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "nplm": {"steps": 120, "hidden": (64,), "embedding_dim": 8},
        "transformer": {"steps": 120, "dim": 32, "n_layers": 1},
    },
    "full": {  # a few minutes in all (the gallery's budget), not the families' full training
        "nplm": {"steps": 800, "batch_size": 256},
        "transformer": {"steps": 400, "batch_size": 256, "lr": 3e-3, "dim": 64, "n_layers": 2},
    },
}
CONTEXT_OPTION = {"nplm": "context", "transformer": "window"}


def _nll(model: Any, x: torch.Tensor) -> float:
    with torch.no_grad():
        return token_scores(model.log_prob(x), x)["nll_per_token"]


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    data = load(DATA[budget], seed=seed)
    train, val = validation_split(len(data.x_train), 0.1, seed)
    inner = Dataset(data.x_train[train], data.x_test, data.info)
    x_val = data.x_train[val]
    uniform = math.log(len(data.info.vocabulary))
    curves: dict[str, dict[int, float]] = {"ngram": {}}
    for order in NGRAM_ORDERS[budget]:
        models = {b: fit("ngram", inner, order=order, smoothing=b) for b in SMOOTHINGS}
        best = min(models.values(), key=lambda m: _nll(m, x_val))
        curves["ngram"][order - 1] = _nll(best, data.x_test)
    for family, settings in NEURAL[budget].items():
        curves[family] = {}
        for context in CONTEXTS[budget]:
            option = {CONTEXT_OPTION[family]: context}
            model = fit(family, data, seed=seed, **settings, **option)
            curves[family][context] = _nll(model, data.x_test)
    unigram = curves["ngram"][0]
    learned = ("nplm", "transformer")
    improves = all(
        curves[f][max(CONTEXTS[budget])] < curves[f][min(CONTEXTS[budget])] for f in learned
    )
    below_unigram = all(v < unigram for f in learned for c, v in curves[f].items() if c >= 2)
    holds = uniform > unigram > curves["ngram"][1] and improves and below_unigram
    best_ngram = min(curves["ngram"].values())
    best_learned = min(min(curves[f].values()) for f in learned)

    fig, ax = new_figure(1, width=5.8)
    for i, (name, curve) in enumerate(curves.items()):
        label = "n-gram counts (context n - 1)" if name == "ngram" else name
        ax.plot(list(curve), list(curve.values()), "o-", ms=3, color=PALETTE[i], label=label)
    ax.axhline(uniform, color="grey", ls=":", label=f"uniform (log {len(data.info.vocabulary)})")
    ax.axhline(unigram, color="grey", ls="--", lw=0.8, label="unigram")
    ax.set(xlabel="context (characters read)", ylabel="held-out NLL (nats/char)")
    ax.set_title(f"{DATA[budget]}: {len(data.x_test)} held-out items")
    ax.legend(fontsize=7)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "uniform > unigram > bigram on held-out data; the MLP and the transformer each "
            "lower their NLL from the shortest to the longest context, and beat the unigram at "
            "every context >= 2"
        ),
        numbers={
            "data": DATA[budget],
            "uniform_nll": uniform,
            "unigram_nll": unigram,
            "nll_by_context": {
                name: {str(c): v for c, v in curve.items()} for name, curve in curves.items()
            },
            "best_ngram_nll": best_ngram,
            "best_learned_nll": best_learned,
        },
        figure=fig,
    )
