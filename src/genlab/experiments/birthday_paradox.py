r"""The birthday paradox measures a GAN's support: how many distinct images does it really make?

A batch of :math:`s` draws from a distribution uniform on :math:`S` points holds a repeat with
probability :math:`1 - \prod_{i<s}(1 - i/S) \approx 1 - e^{-s^2/2S}`, which passes 1/2 at
:math:`s \approx \sqrt{2 S \ln 2}`. So if batches of :math:`s` samples hold a near-duplicate
pair half of the time, the support size is about :math:`s^2` (Arora & Zhang, 2017; the test and
its threshold calibration are :mod:`genlab.metrics.birthday`, near-duplicates being closer than
the 1% quantile of the real images' nearest-neighbour distances).

The experiment first checks the test where the answer is known: a "generator" that replays
:math:`K` training images uniformly (:math:`s^2 \approx 1.39 K`), and one that replays the whole
training set (:math:`K = n_\text{train}`). Then it trains a GAN on ``digits`` and estimates its
support the same way, to compare with the :math:`n_\text{train}` images it learnt from: a
support far below :math:`n_\text{train}` means the GAN has not learnt the distribution's
diversity, only a small part of it. Samples are put on the data's grid of levels before the
test, as stored images are. The closest near-duplicate pairs are shown for inspection: the
test counts pairs a person would call the same image only if the pictures agree.

References:
    Arora & Zhang, "Do GANs actually learn the distribution? An empirical study", 2017,
    arXiv:1706.08224.
    Arora, Risteski & Zhang, "Do GANs learn the distribution? Some theory and empirics",
    ICLR 2018.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from matplotlib.image import imread

from genlab.api import fit
from genlab.data import load
from genlab.experiments.base import Budget, ExperimentResult
from genlab.metrics.birthday import (
    BirthdayResult,
    Sampler,
    birthday_support,
    duplicate_threshold,
)
from genlab.metrics.sample_quality import to_data_grid
from genlab.report.figures import PALETTE, new_figure
from genlab.report.images import image_grid_png

NAME = "birthday-paradox"
CLAIM = (
    "The birthday-paradox test recovers a known support size within a factor 2, and estimates a "
    "trained GAN's support, to set against the size of its training set."
)
KNOWN_SUPPORT = 256
REPETITIONS = {"smoke": 20, "full": 40}  # of the GAN's test
REPLAY_REPETITIONS = 200  # cheap, and enough for the median to sit within ~4 s.e. of 2x
# MLP networks: the convolutional GAN takes ~0.3 s a step on a shared 2-core CPU
GAN_SETTINGS = {
    "smoke": {"budget": "smoke", "architecture": "mlp"},
    "full": {"architecture": "mlp", "steps": 2000, "eval_every": 2000},
}
PAIRS_SHOWN = 12
TOLERANCE = 2.0


def replay_sampler(pool: torch.Tensor) -> Sampler:
    """A "generator" uniform on the rows of ``pool``: ``(n, generator) -> (n, ...)``."""

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        return pool[torch.randint(len(pool), (n,), generator=generator)]

    return sample


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    data = load("digits")
    train = data.x_train
    threshold = duplicate_threshold(train)
    repetitions = REPETITIONS[budget]
    generator = torch.Generator().manual_seed(seed)
    subset = train[torch.randperm(len(train), generator=generator)[:KNOWN_SUPPORT]]
    results: dict[str, BirthdayResult] = {}
    known = {f"replay {KNOWN_SUPPORT} images": KNOWN_SUPPORT, "replay training set": len(train)}
    for name, pool in zip(known, (subset, train), strict=True):
        results[name] = birthday_support(
            replay_sampler(pool), threshold, n_repetitions=REPLAY_REPETITIONS, generator=generator
        )
    model = fit("gan", data, seed=seed, **GAN_SETTINGS[budget])

    def gan_sampler(n: int, g: torch.Generator) -> torch.Tensor:
        return to_data_grid(model.sample(n, generator=g), data.info)

    results["GAN"] = birthday_support(
        gan_sampler, threshold, n_repetitions=repetitions, generator=generator
    )
    ratios = {name: results[name].support / size for name, size in known.items()}
    holds = all(1 / TOLERANCE <= r <= TOLERANCE for r in ratios.values())
    gan = results["GAN"]

    fig, (ax, ax_pairs) = new_figure(2, width=4.8)
    sizes = np.unique(np.geomspace(2, gan.max_batch, 60).astype(int))
    for colour, (name, result) in zip(PALETTE, results.items(), strict=False):
        curve = [result.duplicate_probability(int(s)) for s in sizes]
        ax.semilogx(sizes, curve, "o-", ms=2, lw=1, color=colour, label=name)
        if name in known:
            theory = 1 - np.exp(-sizes * (sizes - 1) / (2 * known[name]))
            ax.semilogx(sizes, theory, ":", color=colour, lw=1)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(
        xlabel="batch size s",
        ylabel="P(near-duplicate in the batch)",
        title="birthday test (dotted: 1 - exp(-s^2/2K))",
    )
    ax.legend(fontsize=7)
    shown = min(PAIRS_SHOWN, len(gan.pairs_a))
    if shown:
        pairs = torch.cat([gan.pairs_a[:shown], gan.pairs_b[:shown]])
        picture = imread(io.BytesIO(image_grid_png(pairs, data.info, n_columns=shown)))
        ax_pairs.imshow(picture, cmap="gray")
    ax_pairs.set_axis_off()
    ax_pairs.set_title(f"GAN's {shown} closest near-duplicate pairs (columns)", fontsize=9)
    support = "none found" if gan.support is None else f"{gan.support:,}"
    fig.suptitle(f"GAN support ~ {support}; training set {len(train):,} images", fontsize=10)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"the estimate s^2 is within a factor {TOLERANCE:g} of K for the replay samplers of "
            f"K = {KNOWN_SUPPORT} and K = n_train = {len(train)} images"
        ),
        numbers={
            "threshold": threshold,
            "repetitions": repetitions,
            "max_batch": gan.max_batch,
            "n_train": len(train),
            "known_support": known,
            "estimated_support": {name: r.support for name, r in results.items()},
            "batch_size_at_half": {name: r.batch_size for name, r in results.items()},
            "estimate_over_truth": ratios,
            "expected_ratio": 2 * math.log(2),
            "gan_support_over_n_train": None if gan.support is None else gan.support / len(train),
            "gan_pair_distances": gan.pair_distances[:shown].tolist(),
            "gan_settings": GAN_SETTINGS[budget],
        },
        figure=fig,
    )
