r"""A large discriminator over-fits a small training sample: the distance it measures is not the true one.

A GAN only sees the distribution through :math:`m` training examples, so what its
discriminator measures is :math:`d_{\mathcal F}(\hat P_m, P_g)`, with the neural-net distance

.. math::
    d_{\mathcal F}(P, Q) = \sup_{D \in \mathcal F}\ \mathbb E_{x \sim P} D(x) -
    \mathbb E_{x \sim Q} D(x),

for the class :math:`\mathcal F` of discriminators :math:`D = \sigma(\mathrm{MLP}) \in [0, 1]`
of a given size (:mod:`genlab.stats.ipm`, class ``"bounded"``). Arora et al. (2017, Theorem
3.1) show that for a class with :math:`p` parameters,
:math:`|d_{\mathcal F}(\hat P_m, \hat Q_m) - d_{\mathcal F}(P, Q)| \le \epsilon` once
:math:`m \gtrsim p \log(p / \epsilon) / \epsilon^2`: with fewer samples, or a larger class,
the distance measured on the sample need not generalise.

We measure the gap with the *perfect* generator :math:`P_g = P` (data and generator are both
:math:`\mathcal N(0, I_8)`), so that the true distance is :math:`d_{\mathcal F}(P, P_g) = 0`.
For each training-sample size :math:`m` and discriminator size, a discriminator is trained
(:func:`~genlab.stats.ipm.train_critic`) to separate the :math:`m` training points from
1,024 generated ones (256 at the smoke budget); its value on them, :math:`\frac1m\sum_i D(x_i) -
\frac1{n}\sum_j D(G(z_j))`, is the training estimate of :math:`d_{\mathcal F}(\hat P_m, P_g)`,
and the same :math:`D` on :data:`N_FRESH` fresh real and generated samples estimates
:math:`\mathbb E_P D - \mathbb E_{P_g} D \approx 0`. The *gap* is the difference of the two: how
far the discriminator's verdict on the training sample is from the truth.

References:
    Arora, Ge, Liang, Ma & Zhang, "Generalization and Equilibrium in Generative Adversarial
    Nets (GANs)", ICML 2017, arXiv:1703.00573.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from genlab.experiments.base import Budget, ExperimentResult
from genlab.nn import MLP
from genlab.report.figures import PALETTE, new_figure
from genlab.stats.ipm import train_critic

NAME = "large-discriminator-overfits"
CLAIM = (
    "Trained on few samples, a large discriminator finds the perfect generator far from the "
    "training sample while fresh samples show no difference: the gap shrinks as the sample "
    "grows and grows with the discriminator's size."
)
DIM = 8
#: discriminator hidden layers, smallest first
SIZES: dict[Budget, tuple[tuple[int, ...], ...]] = {
    "smoke": ((2,), (256, 256)),
    "full": ((2,), (8,), (64,), (256, 256)),
}
SAMPLE_SIZES: dict[Budget, tuple[int, ...]] = {
    "smoke": (16, 256),
    "full": (16, 32, 64, 128, 256, 512, 1024),
}
REPETITIONS: dict[Budget, int] = {"smoke": 1, "full": 2}
N_GENERATED: dict[Budget, int] = {"smoke": 256, "full": 1024}
N_FRESH = 8192
STEPS = 300
LR = 3e-3
FAR = 0.5  # the largest discriminator's gap on the smallest sample must exceed this


def parameter_count(hidden: tuple[int, ...]) -> int:
    """Parameters of the discriminator ``DIM -> hidden -> 1``."""
    return sum(p.numel() for p in MLP(DIM, 1, hidden).parameters())


def label(hidden: tuple[int, ...]) -> str:
    """``(256, 256)`` -> ``"256x256"``."""
    return "x".join(map(str, hidden))


def generalization_gap(
    hidden: tuple[int, ...], m: int, n_generated: int, generator: torch.Generator
) -> dict[str, float]:
    r"""Train a discriminator on :math:`m` real and ``n_generated`` generated points.

    Returns its value on the training points (``train``), on fresh samples (``fresh``), and
    ``gap`` = ``train`` - ``fresh``.
    """
    real = torch.randn(m, DIM, generator=generator)
    generated = torch.randn(n_generated, DIM, generator=generator)
    d = train_critic(real, generated, hidden=hidden, steps=STEPS, lr=LR, generator=generator)
    fresh_real = torch.randn(N_FRESH, DIM, generator=generator)
    fresh_generated = torch.randn(N_FRESH, DIM, generator=generator)
    with torch.no_grad():
        train = float(d(real).mean() - d(generated).mean())
        fresh = float(d(fresh_real).mean() - d(fresh_generated).mean())
    return {"train": train, "fresh": fresh, "gap": train - fresh}


def claim_holds(gaps: list[list[float]]) -> bool:
    """The criterion on ``gaps[size][sample size]`` (sizes smallest first, samples ascending).

    For every size, the gap on the smallest sample exceeds that on the largest; at every
    sample size the largest discriminator's gap exceeds the smallest's; the mean gap over
    sample sizes rises strictly with the size; the largest discriminator's gap on the smallest
    sample exceeds :data:`FAR`.
    """
    g = np.asarray(gaps)
    means = g.mean(axis=1)
    return bool(
        (g[:, 0] > g[:, -1]).all()
        and (g[-1] > g[0]).all()
        and (np.diff(means) > 0).all()
        and g[-1, 0] > FAR
    )


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    sizes, sample_sizes = SIZES[budget], SAMPLE_SIZES[budget]
    generator = torch.Generator().manual_seed(seed)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for hidden in sizes:
        table[label(hidden)] = {}
        for m in sample_sizes:
            runs = [
                generalization_gap(hidden, m, N_GENERATED[budget], generator)
                for _ in range(REPETITIONS[budget])
            ]
            table[label(hidden)][str(m)] = {
                key: statistics.fmean(r[key] for r in runs) for key in ("train", "fresh", "gap")
            }
    gaps = [[table[label(h)][str(m)]["gap"] for m in sample_sizes] for h in sizes]
    holds = claim_holds(gaps)

    fig, (ax, ax_size) = new_figure(2, width=4.6)
    for colour, hidden, row in zip(PALETTE, sizes, gaps, strict=False):
        fresh = [table[label(hidden)][str(m)]["fresh"] for m in sample_sizes]
        name = f"{label(hidden)} ({parameter_count(hidden):,} parameters)"
        ax.plot(sample_sizes, row, "o-", color=colour, label=name)
        ax.plot(sample_sizes, fresh, ":", color=colour, lw=1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylim(-0.05, 1.4)  # room for the legend above the curves
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="training-sample size m",
        ylabel="gap = train value - fresh value",
        title="gap against m (dotted: value on fresh samples)",
    )
    ax.legend(fontsize=7, title="discriminator hidden layers", title_fontsize=7, loc="upper right")
    counts = [parameter_count(h) for h in sizes]
    for j, (colour, m) in enumerate(zip(PALETTE, sample_sizes, strict=False)):
        ax_size.plot(counts, [row[j] for row in gaps], "s-", ms=4, color=colour, label=f"m={m}")
    ax_size.set_xscale("log")
    ax_size.set(
        xlabel="discriminator parameters",
        ylabel="gap",
        title="gap against the discriminator's size",
    )
    ax_size.legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"perfect generator P_g = P = N(0, I_{DIM}): every gap is over-fitting", fontsize=10
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "every size's gap is larger at the smallest sample size than at the largest; at "
            "every sample size the largest discriminator's gap exceeds the smallest's; the mean "
            "gap over sample sizes rises strictly with the size; and the largest "
            f"discriminator's gap on the smallest sample exceeds {FAR}"
        ),
        numbers={
            "dim": DIM,
            "sample_sizes": list(sample_sizes),
            "parameters": {label(h): parameter_count(h) for h in sizes},
            "repetitions": REPETITIONS[budget],
            "n_generated": N_GENERATED[budget],
            "n_fresh": N_FRESH,
            "gap": {
                label(h): dict(zip(map(str, sample_sizes), row, strict=True))
                for h, row in zip(sizes, gaps, strict=True)
            },
            "runs": table,
        },
        figure=fig,
    )
