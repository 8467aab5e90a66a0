r"""A discriminator only slightly larger than an invertible generator already tracks Wasserstein-1.

Bai, Ma & Risteski (2019) show that when the data come from an invertible generator
(leaky-ReLU layers with invertible weight matrices), a class :math:`\mathcal F` of
discriminators only slightly larger than the generators (one more layer) has real
distinguishing power over the family: its IPM

.. math::
    W_{\mathcal F}(P, Q) = \sup_{f \in \mathcal F}\ \mathbb E_P f - \mathbb E_Q f

is sandwiched by the Wasserstein-1 distance, :math:`W_1^{\,c} \lesssim W_{\mathcal F}
\lesssim W_1` (for a 1-Lipschitz class, :math:`W_{\mathcal F} \le W_1` by Kantorovich-Rubinstein
duality), so a small discriminator is enough to tell generators apart, and it generalises
(Arora et al., 2017).

The generators are :math:`G_\theta(z) = W_2\, \sigma(W_1 z + b_1) + b_2` on
:math:`z \sim \mathcal N(0, I_2)`, with :math:`\sigma` the leaky ReLU of slope
:data:`SLOPE` (12 parameters). The data come from :math:`G_{\theta^*}` with random orthogonal
:math:`W_1, W_2`; the family is :math:`\theta^* + t\Delta_k` for random directions
:math:`\Delta_k` and scales :math:`t`, each member shifted (through :math:`b_2`) to the data's
mean, so that a linear discriminator, which only sees means, is blind by construction (the
counter-case). For each member we compute the exact :math:`W_1` between samples by optimal
transport (:func:`~genlab.stats.transport.wasserstein_distance`, the reference) and the IPM of
Lipschitz discriminators (gradient penalty, :func:`~genlab.stats.ipm.critic_ipm`) of three
sizes, and their Spearman rank correlation with :math:`W_1` across the family.

References:
    Bai, Ma & Risteski, "Approximability of Discriminators Implies Diversity in GANs",
    ICLR 2019, arXiv:1806.10586.
    Arora, Ge, Liang, Ma & Zhang, "Generalization and Equilibrium in Generative Adversarial
    Nets (GANs)", ICML 2017, arXiv:1703.00573.
    Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import Tensor

from genlab.experiments.base import Budget, ExperimentResult
from genlab.nn import MLP
from genlab.report.figures import PALETTE, new_figure
from genlab.stats.ipm import critic_ipm
from genlab.stats.transport import wasserstein_distance

NAME = "discriminator-sweet-spot"
CLAIM = (
    "Across a family of invertible generators, the IPM of a discriminator only slightly larger "
    "than the generator ranks them as Wasserstein-1 does, while a linear one cannot."
)
DIM = 2
SLOPE = 0.2
#: discriminator hidden layers: the counter-case, the sweet spot, a large reference
DISCRIMINATORS: dict[str, tuple[int, ...]] = {
    "linear": (),
    "slightly larger": (4, 4, 4),
    "large": (64, 64),
}
SWEET = "slightly larger"
SHOWN: dict[Budget, tuple[str, ...]] = {
    "smoke": ("linear", SWEET),
    "full": tuple(DISCRIMINATORS),
}
DIRECTIONS: dict[Budget, int] = {"smoke": 2, "full": 4}
SCALES: dict[Budget, tuple[float, ...]] = {"smoke": (0.4, 0.8), "full": (0.25, 0.5, 0.75, 1.0)}
N_SAMPLES: dict[Budget, int] = {"smoke": 1000, "full": 2000}  # per side, for each IPM and W1
STEPS: dict[Budget, int] = {"smoke": 300, "full": 500}
LR = 5e-3
N_MEAN = 100_000  # samples that estimate each member's mean
MIN_CORRELATION = 0.8


@dataclass(frozen=True)
class InvertibleGenerator:
    r""":math:`G(z) = W_2\,\sigma(W_1 z + b_1) + b_2`, invertible when :math:`W_1, W_2` are."""

    w1: Tensor
    b1: Tensor
    w2: Tensor
    b2: Tensor

    def __call__(self, z: Tensor) -> Tensor:
        return F.leaky_relu(z @ self.w1.T + self.b1, SLOPE) @ self.w2.T + self.b2

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self(torch.randn(n, DIM, generator=generator, dtype=torch.float64))

    def perturbed(self, t: float, direction: InvertibleGenerator) -> InvertibleGenerator:
        r""":math:`\theta + t\Delta` (the bias :math:`b_2` is set afterwards by the mean)."""
        w1, b1, w2 = (a + t * b for a, b in zip(self.weights(), direction.weights(), strict=True))
        return InvertibleGenerator(w1, b1, w2, self.b2)

    def weights(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.w1, self.b1, self.w2


def random_generator(generator: torch.Generator, orthogonal: bool) -> InvertibleGenerator:
    """Random orthogonal weights (the data's generator) or standard normal ones (a direction)."""

    def weight() -> Tensor:
        w = torch.randn(DIM, DIM, generator=generator, dtype=torch.float64)
        return torch.linalg.qr(w).Q if orthogonal else w

    b1 = torch.randn(DIM, generator=generator, dtype=torch.float64) * 0.5
    return InvertibleGenerator(weight(), b1, weight(), torch.zeros(DIM, dtype=torch.float64))


def parameter_count(hidden: tuple[int, ...]) -> int:
    """Parameters of a discriminator ``DIM -> hidden -> 1``."""
    return sum(p.numel() for p in MLP(DIM, 1, hidden).parameters())


def rank_correlation(reference: list[float], values: list[float]) -> float:
    r"""Spearman's :math:`\rho`: the Pearson correlation of the ranks."""
    return float(spearmanr(reference, values).statistic)


def claim_holds(w1: list[float], ipm: list[float]) -> bool:
    r"""The IPM ranks the family's generators as :math:`W_1` does: Spearman's
    :math:`\rho \ge` :data:`MIN_CORRELATION`."""
    return rank_correlation(w1, ipm) >= MIN_CORRELATION


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    generator = torch.Generator().manual_seed(seed)
    n = N_SAMPLES[budget]
    data = random_generator(generator, orthogonal=True)
    noise = torch.randn(N_MEAN, DIM, generator=generator, dtype=torch.float64)
    mean = data(noise).mean(0)
    members, scales = [data], [0.0]
    for _ in range(DIRECTIONS[budget]):
        direction = random_generator(generator, orthogonal=False)
        for t in SCALES[budget]:
            member = data.perturbed(t, direction)
            members.append(replace(member, b2=mean - member(noise).mean(0)))
            scales.append(t)
    w1: list[float] = []
    ipm: dict[str, list[float]] = {name: [] for name in SHOWN[budget]}
    for member in members:
        x, y = data.sample(n, generator), member.sample(n, generator)
        w1.append(wasserstein_distance(x, y))
        for name in SHOWN[budget]:
            result = critic_ipm(
                data.sample(n, generator),
                member.sample(n, generator),
                "lipschitz",
                hidden=DISCRIMINATORS[name],
                steps=STEPS[budget],
                lr=LR,
                generator=generator,
            )
            ipm[name].append(result.estimate)
    correlation = {name: rank_correlation(w1, values) for name, values in ipm.items()}
    holds = claim_holds(w1, ipm[SWEET])

    fig, (ax, ax_samples) = new_figure(2, width=4.6)
    top = max(max(w1), *(max(v) for v in ipm.values()))
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls=":")
    for colour, (name, values) in zip(PALETTE, ipm.items(), strict=False):
        size = "x".join(map(str, DISCRIMINATORS[name])) or "none"
        label = f"{name} ({size}, {parameter_count(DISCRIMINATORS[name])} parameters)"
        ax.scatter(w1, values, s=16, color=colour, label=f"{label}: rho {correlation[name]:.2f}")
    ax.set(
        xlabel="W1 by exact optimal transport",
        ylabel="IPM of the trained Lipschitz discriminator",
        title="each point: one generator of the family",
    )
    ax.legend(fontsize=7)
    far = max(range(len(members)), key=lambda i: w1[i])
    shown = {"data": data, f"t = {scales[far]:g} (W1 = {w1[far]:.2f})": members[far]}
    for colour, (name, member) in zip(PALETTE, shown.items(), strict=False):
        points = member.sample(2000, generator)
        ax_samples.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4, color=colour, label=name)
    ax_samples.set(aspect="equal", title="samples: the data and the farthest member")
    ax_samples.legend(fontsize=7, markerscale=8)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"the Spearman rank correlation between the {SWEET!r} discriminator's IPM "
            f"(hidden {DISCRIMINATORS[SWEET]}) and the exact W1 across the family is at least "
            f"{MIN_CORRELATION}"
        ),
        numbers={
            "n_members": len(members),
            "scales": scales,
            "n_samples": n,
            "generator_parameters": 2 * DIM * DIM + 2 * DIM,
            "discriminators": {name: list(DISCRIMINATORS[name]) for name in ipm},
            "discriminator_parameters": {
                name: parameter_count(DISCRIMINATORS[name]) for name in ipm
            },
            "w1": w1,
            "ipm": ipm,
            "rank_correlation": correlation,
        },
        figure=fig,
    )
