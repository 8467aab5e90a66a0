r"""Memorisation beats the truth on training data: a sequence model that only remembers.

The ground truth here is known exactly: a smoothed trigram model of the census surnames
(:class:`~genlab.models.ngram.NGram`), from which training and test items are drawn, so every
item's true probability is computable. Three kinds of model of the training sample:

- the **memoriser**, the empirical distribution of the training items,
  :math:`\hat p(x) = \#\{i : x_i = x\}/n`: it gives every training item at least :math:`1/n`,
  far more than the truth gives most of them, and every unseen item probability 0;
- the **truth** itself;
- **honest models**: n-gram counts of orders 1 to 5 fitted on the sample, which spread
  probability over unseen items.

On the training items the memoriser's NLL per character is below the truth's and every honest
model's; on test items it is infinite (any unseen test item has probability 0). Over-fitting
can beat the ground truth on the data it saw, which is why genlab selects and reports models
on held-out data only (the sequence version of ``genlab experiment memorization``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.api import fit
from genlab.data import load
from genlab.data.dataset import PAD_TOKEN, Dataset
from genlab.experiments.base import Budget, ExperimentResult
from genlab.metrics.likelihood import token_scores
from genlab.report.figures import PALETTE, new_figure

NAME = "memorization-beats-truth"
CLAIM = (
    "A model that memorises the training names has a better training likelihood than the true "
    "distribution and every honest model, and an infinite test NLL."
)
N_TRAIN = {"smoke": 2000, "full": 20000}
N_TEST = {"smoke": 2000, "full": 20000}
TRUTH_ORDER, TRUTH_SMOOTHING = 3, 1.0
HONEST_ORDERS = (1, 2, 3, 4, 5)


def empirical_log_prob(train: Tensor, x: Tensor) -> Tensor:
    r"""``(N,)`` :math:`\log \hat p(x) = \log(\#\{i : \mathrm{train}_i = x\}/n)`, ``-inf`` unseen."""
    rows, inverse, counts = torch.unique(
        torch.cat([train, x]), dim=0, return_inverse=True, return_counts=True
    )
    train_counts = torch.bincount(inverse[: len(train)], minlength=len(rows))
    return (train_counts[inverse[len(train) :]].double() / len(train)).log()


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    names = load("names", seed=seed)
    truth = fit("ngram", names, order=TRUTH_ORDER, smoothing=TRUTH_SMOOTHING)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        train = truth.sample(N_TRAIN[budget], generator=generator)
        test = truth.sample(N_TEST[budget], generator=generator)
    sample = Dataset(train, test, names.info)

    def per_char(log_p: Tensor, x: Tensor) -> float:
        return token_scores(log_p, x)["nll_per_token"]

    with torch.no_grad():
        scores = {
            "memoriser": {
                "train": per_char(empirical_log_prob(train, train), train),
                "test": per_char(empirical_log_prob(train, test), test),
            },
            "truth": {
                "train": per_char(truth.log_prob(train), train),
                "test": per_char(truth.log_prob(test), test),
            },
        }
        for order in HONEST_ORDERS:
            model = fit("ngram", sample, order=order, smoothing=0.3, val_fraction=0.0)
            scores[f"{order}-gram"] = {
                "train": per_char(model.log_prob(train), train),
                "test": per_char(model.log_prob(test), test),
            }
    unseen = float((empirical_log_prob(train, test) == -math.inf).double().mean())
    memoriser = scores["memoriser"]
    others = [v["train"] for k, v in scores.items() if k != "memoriser"]
    holds = memoriser["train"] < min(others) and math.isinf(memoriser["test"])

    fig, ax = new_figure(1, width=6.0)
    names_ = list(scores)
    positions = torch.arange(len(names_)).float()
    top = max(v["test"] for v in scores.values() if math.isfinite(v["test"])) * 1.25
    for offset, split, color in ((-0.2, "train", PALETTE[1]), (0.2, "test", PALETTE[0])):
        values = [min(scores[n][split], top) for n in names_]
        ax.bar((positions + offset).tolist(), values, width=0.4, color=color, label=split)
    ax.text(0.2, top * 0.97, "∞", ha="center", va="top", fontsize=12)
    ax.axhline(scores["truth"]["test"], color="grey", ls=":", lw=0.8)
    ax.set_xticks(positions.tolist(), names_, rotation=30, fontsize=8)
    ax.set(ylabel="NLL (nats/char)", ylim=(0, top))
    ax.set_title(f"{N_TRAIN[budget]} names drawn from a known trigram model")
    ax.legend(fontsize=8)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "the memoriser's training NLL per character is below the truth's and every n-gram's "
            "(orders 1-5) on the same items, and its test NLL is infinite"
        ),
        numbers={
            "nll_per_char": scores,
            "test_items_unseen_in_training": unseen,
            "n_train": N_TRAIN[budget],
            "tokens_per_train_item": float((train != PAD_TOKEN).sum()) / len(train),
        },
        figure=fig,
    )
