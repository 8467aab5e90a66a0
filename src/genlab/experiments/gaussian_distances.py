r"""How distances between Gaussians scale, and what that means for telling them apart.

- :math:`P = \mathcal N(0, 1)`, :math:`Q = \mathcal N(\epsilon, 1)`:
  :math:`\mathrm{TV} = 2\Phi(\epsilon/2) - 1 \approx \epsilon / \sqrt{2\pi}` is linear in
  :math:`\epsilon`, while :math:`\mathrm{KL} = \epsilon^2/2` is quadratic.
- A narrow normal: :math:`\mathrm{KL}(\mathcal N(0, I_d) \,\|\, \mathcal N(0, \epsilon^2 I_d)) =
  \frac d2 (\epsilon^{-2} - 1 + 2\log\epsilon) \sim d/(2\epsilon^2)`.
- The likelihood-ratio test between :math:`P` and :math:`Q` (Neyman-Pearson, threshold
  halfway) needs a number of samples that grows like :math:`1/\mathrm{KL}` (Chernoff-Stein):
  we find, by simulation, the smallest :math:`n` at which its average error rate falls to 5%,
  and regress :math:`\log n` on :math:`\log(1/\mathrm{KL})`.

The KL values come from :func:`genlab.stats.kl_gaussians` (checked against the closed forms
above); TV comes from :func:`genlab.stats.tv_distance` on densities discretised on a fine grid.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import new_figure
from genlab.stats import kl_gaussians, tv_distance

NAME = "gaussian-distances"
CLAIM = (
    "Between N(0,1) and N(eps,1), TV grows like eps and KL like eps^2; KL to a narrow normal "
    "grows like d/eps^2; a likelihood-ratio test needs about 1/KL samples."
)
EPSILONS = np.logspace(-2, 0, 9)
TEST_EPSILONS = {"smoke": np.array([0.2, 0.4, 0.8]), "full": np.array([0.1, 0.2, 0.4, 0.8])}
REPETITIONS = {"smoke": 400, "full": 2000}
TARGET_ERROR = 0.05
GRID = torch.linspace(-12, 13, 200_001, dtype=torch.float64)


def tv_by_discretisation(eps: float) -> float:
    """TV of the two normals' probabilities on a fine grid (a discrete TV)."""
    p = torch.exp(-0.5 * GRID**2)
    q = torch.exp(-0.5 * (GRID - eps) ** 2)
    return float(tv_distance(p / p.sum(), q / q.sum()))


def lr_test_error(eps: float, n: int, repetitions: int, generator: torch.Generator) -> float:
    r"""Average of type I and II errors of the likelihood-ratio test with :math:`n` samples.

    For these two normals the log-likelihood ratio is increasing in the sample mean, so the
    test rejects :math:`P` when :math:`\bar x > \epsilon/2`.
    """
    x_p = torch.randn(repetitions, n, generator=generator, dtype=torch.float64)
    x_q = torch.randn(repetitions, n, generator=generator, dtype=torch.float64) + eps
    type_one = (x_p.mean(1) > eps / 2).double().mean()
    type_two = (x_q.mean(1) <= eps / 2).double().mean()
    return float((type_one + type_two) / 2)


def samples_needed(eps: float, repetitions: int, generator: torch.Generator) -> int:
    """Smallest n (searched on a doubling-then-bisection path) with error <= 5%."""
    low, high = 1, 1
    while lr_test_error(eps, high, repetitions, generator) > TARGET_ERROR:
        low, high = high, 2 * high
    while high - low > max(1, low // 20):
        mid = (low + high) // 2
        if lr_test_error(eps, mid, repetitions, generator) > TARGET_ERROR:
            low = mid
        else:
            high = mid
    return high


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    generator = torch.Generator().manual_seed(seed)
    tv = np.array([tv_by_discretisation(e) for e in EPSILONS])
    kl_shift = np.array([kl_gaussians([0.0], [[1.0]], [e], [[1.0]]) for e in EPSILONS])
    narrow = {
        d: np.array(
            [kl_gaussians(np.zeros(d), np.eye(d), np.zeros(d), e**2 * np.eye(d)) for e in EPSILONS]
        )
        for d in (1, 10)
    }
    test_eps = TEST_EPSILONS[budget]
    needed = np.array([samples_needed(e, REPETITIONS[budget], generator) for e in test_eps])
    inverse_kl = 1 / (test_eps**2 / 2)
    slopes = {
        "tv_vs_eps": slope(EPSILONS, tv),
        "kl_vs_eps": slope(EPSILONS, kl_shift),
        "narrow_kl_vs_eps": slope(EPSILONS[:5], narrow[1][:5]),
        "samples_vs_inverse_kl": slope(inverse_kl, needed),
    }
    closed_form_tv = 2 * norm.cdf(EPSILONS / 2) - 1
    fig, (ax_scaling, ax_narrow, ax_samples) = new_figure(3, width=3.9)
    ax_scaling.loglog(EPSILONS, tv, "o-", ms=3, label=f"TV (slope {slopes['tv_vs_eps']:.2f})")
    ax_scaling.loglog(
        EPSILONS, kl_shift, "s-", ms=3, label=f"KL (slope {slopes['kl_vs_eps']:.2f})"
    )
    ax_scaling.set(xlabel="eps", title="N(0,1) vs N(eps,1)")
    ax_scaling.legend(fontsize=7)
    for d, values in narrow.items():
        ax_narrow.loglog(EPSILONS, values, "o-", ms=3, label=f"d = {d}")
        ax_narrow.loglog(EPSILONS, d / (2 * EPSILONS**2), ":", color="grey")
    ax_narrow.set(xlabel="eps", title="KL(N(0,I) || N(0, eps^2 I))")
    ax_narrow.legend(fontsize=7)
    ax_samples.loglog(
        inverse_kl,
        needed,
        "o-",
        ms=4,
        label=f"simulated (slope {slopes['samples_vs_inverse_kl']:.2f})",
    )
    ax_samples.set(xlabel="1 / KL", ylabel="samples for 5% error", title="likelihood-ratio test")
    ax_samples.legend(fontsize=7)
    holds = (
        abs(slopes["tv_vs_eps"] - 1) < 0.05
        and abs(slopes["kl_vs_eps"] - 2) < 0.01
        and abs(slopes["narrow_kl_vs_eps"] + 2) < 0.1
        and abs(slopes["samples_vs_inverse_kl"] - 1) < 0.15
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "log-log slopes: TV vs eps within 0.05 of 1, KL vs eps within 0.01 of 2, narrow KL "
            "vs eps within 0.1 of -2, samples needed vs 1/KL within 0.15 of 1"
        ),
        numbers={
            "slopes": slopes,
            "epsilons": EPSILONS.tolist(),
            "tv": tv.tolist(),
            "tv_closed_form": closed_form_tv.tolist(),
            "kl": kl_shift.tolist(),
            "narrow_kl": {str(d): v.tolist() for d, v in narrow.items()},
            "test_epsilons": test_eps.tolist(),
            "samples_needed": needed.tolist(),
            "samples_needed_theory": (4 * norm.ppf(1 - TARGET_ERROR) ** 2 / test_eps**2).tolist(),
        },
        figure=fig,
    )
