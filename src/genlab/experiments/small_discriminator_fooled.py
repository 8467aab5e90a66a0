r"""A generator with a support of about :math:`m` points fools every discriminator of about :math:`m` parameters.

The neural-net distance cannot demand diversity (Arora et al., 2017, Section 3, their
generalisation bound applied to the empirical distribution of :math:`m` samples): for a class
of discriminators with :math:`p` parameters, a uniform mixture of
:math:`m = \tilde O(p \log p / \epsilon^2)` points drawn from the real distribution :math:`P`
is :math:`\epsilon`-close to :math:`P`,

.. math::
    d_{\mathcal F}(P, G_m) = \sup_{D \in \mathcal F}\ \mathbb E_P D - \mathbb E_{G_m} D
    \le \epsilon, \qquad G_m = \frac1m \sum_{i=1}^m \delta_{a_i},\ a_i \sim P,

although :math:`G_m` is a finite support that a person (or a two-sample test with enough
samples) tells from :math:`P` at once. Arora, Risteski & Zhang (2018) turn the birthday
paradox into such a test: batches of :math:`s \approx \sqrt{2 \ln 2\, m}` samples hold a
duplicate half of the time (:mod:`genlab.metrics.birthday`).

Here :math:`P = \mathcal N(0, I_{16})`; for each support size :math:`m` the atoms
:math:`a_i \sim P` are drawn once, and each discriminator (one hidden layer of :math:`h`
units, :math:`p = 18h + 1` parameters, output :math:`\sigma(\cdot) \in [0, 1]`) is trained on
half of :math:`n` real and :math:`n` generated samples and scored on the other half: its
*detection* is the held-out :math:`\mathbb E_P D - \mathbb E_{G_m} D`
(:func:`~genlab.stats.ipm.critic_ipm`, class ``"bounded"``; 0 at chance, 1 for a perfect
separation). For each size, :math:`m_{1/2}` is the support beyond which detection stays
below 1/2 (interpolated in :math:`\log m`). The same :math:`n` samples go to the classifier two-sample
test with a 1-nearest-neighbour classifier (:func:`~genlab.stats.two_sample.classifier_test`;
a generated test point whose atom was among the training points has a copy at distance 0),
and the birthday test estimates each support from generated streams.

References:
    Arora, Ge, Liang, Ma & Zhang, "Generalization and Equilibrium in Generative Adversarial
    Nets (GANs)", ICML 2017, arXiv:1703.00573.
    Arora, Risteski & Zhang, "Do GANs learn the distribution? Some theory and empirics",
    ICLR 2018.
    Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017, arXiv:1610.06545.
    Schilling, "Multivariate two-sample tests based on nearest neighbors", JASA 1986.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genlab.experiments.base import Budget, ExperimentResult
from genlab.metrics.birthday import birthday_support, duplicate_threshold
from genlab.nn import MLP
from genlab.report.figures import PALETTE, new_figure
from genlab.stats.ipm import critic_ipm
from genlab.stats.two_sample import classifier_test

NAME = "small-discriminator-fooled"
CLAIM = (
    "A generator supported on m training-like points fools discriminators of about m "
    "parameters (their detection falls towards chance as m grows past their size), while a "
    "nearest-neighbour two-sample test on the same samples and the birthday test detect it."
)
DIM = 16
WIDTHS: dict[Budget, tuple[int, ...]] = {"smoke": (2, 16), "full": (2, 8, 32, 128)}
SUPPORTS: dict[Budget, tuple[int, ...]] = {
    "smoke": (4, 32, 256, 2048),
    "full": (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
}
N_SAMPLES: dict[Budget, int] = {"smoke": 4096, "full": 8192}  # per side, 2x the largest support
STEPS: dict[Budget, int] = {"smoke": 300, "full": 600}
LR = 1e-2
BIRTHDAY_REPETITIONS = 20
ALPHA = 0.05
CHANCE = 0.1  # detection below this counts as fooled (a classifier on D: accuracy <= 55%)
RATIO_RANGE = (0.25, 4.0)  # m_1/2 / p must lie in this range: "about p points"
BIRTHDAY_FACTOR = 4  # the birthday estimate s^2 must be at most this times the support


def nearest_neighbour(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Labels of ``x_test`` by their nearest neighbour in ``x_train`` (the C2ST classifier)."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=1).fit(x_train, y_train).predict(x_test)


def parameter_count(width: int) -> int:
    """Parameters of the discriminator ``DIM -> width -> 1``: :math:`(d + 2) h + 1`."""
    return sum(p.numel() for p in MLP(DIM, 1, (width,)).parameters())


def half_point(supports: tuple[int, ...], detection: list[float]) -> float | None:
    r"""Support :math:`m_{1/2}` beyond which detection stays below 1/2: linear interpolation
    in :math:`\log m` between the last support with detection :math:`\ge 1/2` and the next
    (``None`` if no support reaches 1/2, or the last one does).

    Taking the *last* crossing makes :math:`m_{1/2}` insensitive to a small discriminator
    that stalls on a plateau at a small support (a false negative that more training fixes).
    """
    above = [i for i, d in enumerate(detection) if d >= 0.5]
    if not above or above[-1] == len(supports) - 1:
        return None
    i = above[-1]
    high, low = detection[i], detection[i + 1]
    t = (high - 0.5) / (high - low)
    return math.exp((1 - t) * math.log(supports[i]) + t * math.log(supports[i + 1]))


def half_point_slope(widths: tuple[int, ...], half_points: list[float | None]) -> float | None:
    r"""Least-squares slope of :math:`\log m_{1/2}` against :math:`\log p` (1: proportional)."""
    if any(h is None for h in half_points) or len(widths) < 2:
        return None
    counts = np.log([parameter_count(w) for w in widths])
    return float(np.polyfit(counts, np.log(np.asarray(half_points, dtype=float)), 1)[0])


def claim_holds(
    widths: tuple[int, ...],
    detection: list[list[float]],
    half_points: list[float | None],
    c2st_rejects: list[bool],
    birthday_ratio: list[float | None],
) -> bool:
    """The criterion, with ``detection[width][support]`` and widths smallest first.

    Every width has an :math:`m_{1/2}`, they rise strictly with the width, and each
    :math:`m_{1/2} / p` lies in :data:`RATIO_RANGE`; the smallest discriminator's detection
    at the largest support is below :data:`CHANCE`; the two-sample test rejects every
    generator, and every birthday estimate :math:`s^2` is at most :data:`BIRTHDAY_FACTOR`
    times the support.
    """
    if any(h is None for h in half_points):
        return False
    halves = np.asarray(half_points, dtype=float)
    ratios = halves / np.asarray([parameter_count(w) for w in widths])
    low, high = RATIO_RANGE
    return bool(
        (np.diff(halves) > 0).all()
        and ((ratios >= low) & (ratios <= high)).all()
        and detection[0][-1] < CHANCE
        and all(c2st_rejects)
        and all(r is not None and r <= BIRTHDAY_FACTOR for r in birthday_ratio)
    )


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    widths, supports, n = WIDTHS[budget], SUPPORTS[budget], N_SAMPLES[budget]
    generator = torch.Generator().manual_seed(seed)
    threshold = duplicate_threshold(torch.randn(n, DIM, generator=generator))
    detection: list[list[float]] = [[] for _ in widths]
    std_errors: list[list[float]] = [[] for _ in widths]
    c2st: list[dict[str, float | bool]] = []
    birthday: list[int | None] = []
    for m in supports:
        atoms = torch.randn(m, DIM, generator=generator)

        def sample(k: int, g: torch.Generator, atoms: torch.Tensor = atoms) -> torch.Tensor:
            return atoms[torch.randint(len(atoms), (k,), generator=g)]

        real, fake = torch.randn(n, DIM, generator=generator), sample(n, generator)
        for i, width in enumerate(widths):
            result = critic_ipm(
                real, fake, hidden=(width,), steps=STEPS[budget], lr=LR, generator=generator
            )
            detection[i].append(result.estimate)
            std_errors[i].append(result.std_error)
        test = classifier_test(
            real, fake, alpha=ALPHA, classifier=nearest_neighbour, generator=generator
        )
        c2st.append({"accuracy": test.statistic, "p_value": test.p_value, "reject": test.reject})
        estimate = birthday_support(
            sample, threshold, n_repetitions=BIRTHDAY_REPETITIONS, generator=generator
        )
        birthday.append(estimate.support)
    half_points = [half_point(supports, row) for row in detection]
    birthday_ratio = [
        None if s is None else s / m for s, m in zip(birthday, supports, strict=True)
    ]
    holds = claim_holds(
        widths, detection, half_points, [bool(c["reject"]) for c in c2st], birthday_ratio
    )

    fig, (ax, ax_scaled, ax_birthday) = new_figure(3, width=4.3)
    for colour, width, row, half in zip(PALETTE, widths, detection, half_points, strict=False):
        p = parameter_count(width)
        ax.plot(supports, row, "o-", ms=3, color=colour, label=f"{width} units ({p} parameters)")
        ax_scaled.plot(np.asarray(supports) / p, row, "o-", ms=3, color=colour)
        if half is not None:
            ax.plot([half], [0.5], "v", color=colour, ms=7)
    advantage = [2 * float(c["accuracy"]) - 1 for c in c2st]
    ax.plot(supports, advantage, "k--", lw=1.2, label="1-NN C2ST: 2 accuracy - 1")
    for a in (ax, ax_scaled):
        a.axhline(CHANCE, color="grey", ls=":", lw=1)
        a.axhline(0.5, color="grey", lw=0.5)
        a.set_xscale("log", base=2)
        a.set_ylim(-0.1, 1.05)
    ax.set(xlabel="support size m", ylabel="held-out E_P D - E_G D", title="detection")
    ax.legend(fontsize=7, title="discriminator (v: m_1/2)", title_fontsize=7)
    ax_scaled.axvline(1.0, color="grey", lw=0.8)
    ax_scaled.set(
        xlabel="support / discriminator parameters", title="detection against m / p", yticks=[]
    )
    found = [(m, s) for m, s in zip(supports, birthday, strict=True) if s is not None]
    ax_birthday.loglog([m for m, _ in found], [s for _, s in found], "o", color=PALETTE[0])
    ax_birthday.loglog(supports, [2 * math.log(2) * m for m in supports], ":", color="grey")
    ax_birthday.set(
        xlabel="support size m",
        ylabel="birthday estimate s^2",
        title="birthday test (dotted: 2 ln 2 m)",
    )
    fig.suptitle(
        f"real P = N(0, I_{DIM}), generator uniform on m atoms drawn from P; {n} samples each",
        fontsize=10,
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "the support m_1/2 beyond which detection stays below 1/2 exists for every "
            "discriminator, "
            f"rises with its size and lies within {RATIO_RANGE[0]:g}-{RATIO_RANGE[1]:g} times "
            "its parameter count p; the smallest discriminator's detection at the largest "
            f"support is below {CHANCE}; the 1-nearest-neighbour C2ST rejects every generator at "
            f"level {ALPHA} on the same samples, and every birthday estimate s^2 is at most "
            f"{BIRTHDAY_FACTOR} m"
        ),
        numbers={
            "dim": DIM,
            "n_samples": n,
            "supports": list(supports),
            "parameters": {str(w): parameter_count(w) for w in widths},
            "detection": {
                str(w): dict(zip(map(str, supports), row, strict=True))
                for w, row in zip(widths, detection, strict=True)
            },
            "detection_std_error": {
                str(w): dict(zip(map(str, supports), row, strict=True))
                for w, row in zip(widths, std_errors, strict=True)
            },
            "half_point": {str(w): h for w, h in zip(widths, half_points, strict=True)},
            "half_point_over_parameters": {
                str(w): None if h is None else h / parameter_count(w)
                for w, h in zip(widths, half_points, strict=True)
            },
            "half_point_slope": half_point_slope(widths, half_points),
            "c2st": dict(zip(map(str, supports), c2st, strict=True)),
            "birthday_support": dict(zip(map(str, supports), birthday, strict=True)),
            "birthday_over_support": dict(zip(map(str, supports), birthday_ratio, strict=True)),
        },
        figure=fig,
    )
