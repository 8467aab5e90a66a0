r"""A non-convex Pareto front: weighted sums miss part of it, and gradient descent jumps across.

Minimising a weighted sum :math:`L_1 + \lambda L_2` (:math:`\lambda \ge 0`) is the usual way to
trade two objectives (a :math:`\beta`-VAE, a regulariser, an auxiliary loss). A minimiser of
the sum is Pareto optimal, but the converse fails when the front is not convex: a point of the
front is the *global* minimiser of some weighted sum only if it lies on the lower-left convex
hull of the front (it is *supported*), and it is a *local* minimiser only where

.. math::
    \lambda(t) = -\frac{L_1'(t)}{L_2'(t)}, \qquad
    \frac{d^2}{dt^2}\big(L_1 + \lambda L_2\big)\Big|_{\lambda = \lambda(t)} =
    L_1''(t) + \lambda(t) L_2''(t) > 0

along the Pareto set :math:`t`. Where this curvature is negative (the *gap*), the stationary
point of the sum is a maximum: gradient descent on :math:`L_1 + \lambda L_2` can never end
there, whatever :math:`\lambda`, and as :math:`\lambda` moves its solution jumps from one side
of the gap to the other (Das & Dennis, 1997; Degrave & Korshunova, 2021, who recommend
constrained optimisation instead).

The problem is the one-variable form of the test problem FON (Deb et al., 2002, from
Fonseca & Fleming): :math:`L_1(t) = 1 - e^{-(t-1)^2}`, :math:`L_2(t) = 1 - e^{-(t+1)^2}`, whose
Pareto set is :math:`t \in [-1, 1]` and whose front is known in closed form. Next to it, the
convex problem SCH (Schaffer, 1985): :math:`L_1 = t^2`, :math:`L_2 = (t - 2)^2`, Pareto set
:math:`[0, 2]`, where every Pareto point minimises :math:`L_1 + \lambda L_2` for
:math:`\lambda = t / (2 - t)` (the counter-case, as in the convex ``pareto`` experiment).
Gradient descent runs on :math:`(L_1 + \lambda L_2) / (1 + \lambda)` (same minimisers, a step
size that suits every :math:`\lambda`) from seeded random starts, for a sweep of
:math:`\lambda`.

References:
    Das & Dennis, "A closer look at drawbacks of minimizing weighted sums of objectives for
    Pareto set generation in multicriteria optimization problems", Structural Optimization
    14, 1997.
    Degrave & Korshunova, "Why machine learning algorithms are hard to tune and how to fix
    it", engraved.blog, 2021.
    Deb, Pratap, Agarwal & Meyarivan, "A fast and elitist multiobjective genetic algorithm:
    NSGA-II", IEEE Trans. Evolutionary Computation 6(2), 2002 (problems FON and SCH).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import PALETTE, new_figure

NAME = "pareto-nonconvex"
CLAIM = (
    "When the Pareto front of two objectives is not convex, some Pareto points minimise no "
    "weighted sum L1 + lambda L2, and gradient descent on the sum jumps across that gap as "
    "lambda moves."
)
N_FRONT = 2001
LAMBDAS: dict[Budget, int] = {"smoke": 41, "full": 161}  # log-spaced in [1e-2, 1e2]
STARTS: dict[Budget, int] = {"smoke": 4, "full": 16}
STEPS = 4000
LR = 0.5
CURVATURE_TOLERANCE = 1e-6  # a converged end point's curvature is >= 0 up to this


@dataclass(frozen=True)
class BiObjective:
    """Two objectives of one variable and their known Pareto set ``[low, high]``."""

    name: str
    objectives: Callable[[Tensor], tuple[Tensor, Tensor]]
    low: float
    high: float


FON = BiObjective(
    "FON", lambda t: (1 - torch.exp(-((t - 1) ** 2)), 1 - torch.exp(-((t + 1) ** 2))), -1.0, 1.0
)
SCH = BiObjective("SCH", lambda t: (t**2, (t - 2) ** 2), 0.0, 2.0)


def derivatives(problem: BiObjective, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:math:`L_1', L_2', L_1'', L_2''` at each point of ``t`` ``(n,)``, by autograd."""
    t = t.detach().clone().requires_grad_(True)
    out = []
    for loss in problem.objectives(t):
        (first,) = torch.autograd.grad(loss.sum(), t, create_graph=True)
        (second,) = torch.autograd.grad(first.sum(), t)
        out.append((first.detach(), second))
    (d1, h1), (d2, h2) = out
    return d1, d2, h1, h2


def weight_and_curvature(problem: BiObjective, t: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\lambda(t) = -L_1'/L_2' = |L_1'| / |L_2'|` and :math:`L_1'' + \lambda(t) L_2''`
    (module docstring) at points ``t`` ``(n,)`` of the Pareto set, where the two slopes have
    opposite signs.

    At the end of the Pareto set where :math:`L_2' = 0`, :math:`\lambda = \infty` and the
    curvature is :math:`+\infty` when :math:`L_2'' > 0`.
    """
    d1, d2, h1, h2 = derivatives(problem, t)
    weight = d1.abs() / d2.abs()
    return weight, h1 + weight * h2


def supported(l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    r"""Mask of the front points on its lower-left convex hull: the minimisers of
    :math:`L_1 + \lambda L_2` over the front for some :math:`\lambda \in [0, \infty]`.

    Arguments:
        l1, l2: ``(n,)`` the front, sorted by increasing ``l1`` (so decreasing ``l2``).

    Andrew's monotone chain keeps the lower hull; points on a hull edge count as supported
    (every point of the edge minimises the sum whose level lines are parallel to it).
    """
    hull: list[int] = []
    for i in range(len(l1)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (l1[b] - l1[a]) * (l2[i] - l2[a]) - (l2[b] - l2[a]) * (l1[i] - l1[a])
            if cross > 0:  # b is below the segment a-i: a counter-clockwise (convex) turn
                break
            hull.pop()
        hull.append(i)
    mask = np.zeros(len(l1), dtype=bool)
    for a, b in zip(hull[:-1], hull[1:], strict=True):
        between = slice(a, b + 1)
        mask[between] = _on_segment(l1[between], l2[between], (l1[a], l2[a]), (l1[b], l2[b]))
    mask[hull] = True
    return mask


def _on_segment(
    x: np.ndarray, y: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    """Which points lie on the segment from ``a`` to ``b`` (to rounding)."""
    cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
    return np.abs(cross) <= 1e-12 * max(1.0, abs(b[0] - a[0]) + abs(b[1] - a[1]))


def weighted_sum_descent(problem: BiObjective, weights: Tensor, starts: Tensor) -> Tensor:
    r"""``(n_weights, n_starts)`` end points of gradient descent on
    :math:`(L_1 + \lambda L_2) / (1 + \lambda)`, all runs at once (:data:`STEPS` steps of
    :data:`LR`)."""
    lam = weights[:, None].expand(-1, len(starts))
    t = starts[None, :].expand(len(weights), -1).clone().requires_grad_(True)
    for _ in range(STEPS):
        l1, l2 = problem.objectives(t)
        (grad,) = torch.autograd.grad(((l1 + lam * l2) / (1 + lam)).sum(), t)
        with torch.no_grad():
            t -= LR * grad
    return t.detach()


def measure(problem: BiObjective, budget: Budget, generator: torch.Generator) -> dict[str, Any]:
    """The front and its categories, and gradient descent's end points (see module)."""
    t = torch.linspace(problem.low, problem.high, N_FRONT, dtype=torch.float64)
    l1, l2 = (loss.numpy() for loss in problem.objectives(t))
    order = np.argsort(l1)
    on_hull = np.empty(N_FRONT, dtype=bool)
    on_hull[order] = supported(l1[order], l2[order])
    _, curvature = weight_and_curvature(problem, t)
    gap = (curvature < 0).numpy()
    weights = torch.logspace(-2, 2, LAMBDAS[budget], dtype=torch.float64)
    width = problem.high - problem.low
    starts = (
        problem.low
        - 0.25 * width
        + 1.5 * width * torch.rand(STARTS[budget], generator=generator, dtype=torch.float64)
    )
    ends = weighted_sum_descent(problem, weights, starts)  # (n_weights, n_starts)
    _, end_curvature = weight_and_curvature(problem, ends.flatten())
    in_gap = (end_curvature < -CURVATURE_TOLERANCE).reshape(ends.shape)
    gap_points = t[torch.from_numpy(gap)]
    low, high = ends[:-1], ends[1:]  # consecutive weights, per start
    jumps = torch.zeros_like(low, dtype=torch.bool)
    for g in gap_points:
        jumps |= (torch.minimum(low, high) < g) & (g < torch.maximum(low, high))
    e1, e2 = problem.objectives(ends)
    return {
        "t": t.numpy(),
        "l1": l1,
        "l2": l2,
        "on_hull": on_hull,
        "gap": gap,
        "weights": weights.numpy(),
        "starts": starts.numpy(),
        "ends": ends.numpy(),
        "end_l1": e1.numpy(),
        "end_l2": e2.numpy(),
        "unsupported_fraction": float(1 - on_hull.mean()),
        "gap_fraction": float(gap.mean()),
        "ends_in_gap": int(in_gap.sum()),
        "jumps": int(jumps.sum()),
        "largest_step": float((high - low).abs().max()),
    }


def claim_holds(measured: dict[str, Any]) -> bool:
    """Some Pareto points are unsupported and some lie in the gap; no end point of gradient
    descent lies in the gap; and some start's end points jump across the gap between
    consecutive weights."""
    return (
        measured["unsupported_fraction"] > 0
        and measured["gap_fraction"] > 0
        and measured["ends_in_gap"] == 0
        and measured["jumps"] > 0
    )


def summary(measured: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready numbers of :func:`measure`."""
    t, gap = measured["t"], measured["gap"]
    keys = ("unsupported_fraction", "gap_fraction", "ends_in_gap", "jumps", "largest_step")
    return {
        **{key: measured[key] for key in keys},
        "gap_t": [float(t[gap].min()), float(t[gap].max())] if gap.any() else None,
        "supported_t": _intervals(t, measured["on_hull"]),
        "n_runs": int(measured["ends"].size),
        "distinct_end_points": int(np.unique(measured["ends"].round(3)).size),
    }


def _intervals(t: np.ndarray, mask: np.ndarray) -> list[list[float]]:
    """The runs of ``mask`` along ``t`` as ``[first, last]`` pairs."""
    out: list[list[float]] = []
    for i in np.flatnonzero(mask):
        if out and i - 1 >= 0 and mask[i - 1]:
            out[-1][1] = float(t[i])
        else:
            out.append([float(t[i]), float(t[i])])
    return out


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    generator = torch.Generator().manual_seed(seed)
    nonconvex, convex = measure(FON, budget, generator), measure(SCH, budget, generator)
    holds = claim_holds(nonconvex)

    fig, (ax, ax_weights, ax_convex) = new_figure(3, width=4.2)
    for a, m in ((ax, nonconvex), (ax_convex, convex)):
        l1, l2 = m["l1"], m["l2"]
        local = ~m["on_hull"] & ~m["gap"]
        a.plot(l1, l2, color="#cccccc", lw=4, zorder=0, label="Pareto front")
        hull = m["on_hull"]
        a.scatter(l1[hull], l2[hull], s=2, color=PALETTE[0], label="minimum of a weighted sum")
        if local.any():
            a.scatter(l1[local], l2[local], s=2, color=PALETTE[3], label="local minimum only")
        if m["gap"].any():
            gap = m["gap"]
            a.scatter(l1[gap], l2[gap], s=2, color=PALETTE[1], label="no local minimum (gap)")
        ends = (m["end_l1"].ravel(), m["end_l2"].ravel())
        a.scatter(*ends, s=30, marker="x", color="black", lw=0.8, label="descent end points")
        by_l1 = np.argsort(l1[hull])
        hull_line = (l1[hull][by_l1], l2[hull][by_l1])
        a.plot(
            *hull_line, "--", color=PALETTE[0], lw=0.8, label="convex hull: seen by weighted sums"
        )
        a.set(xlabel="L1", ylabel="L2", aspect="equal")
    ax.legend(fontsize=7, loc="lower left")
    ax_convex.legend(fontsize=7, loc="upper right")
    ax.set_title("FON (non-convex front)")
    ax_convex.set_title("SCH (convex front): every point is reached")
    weights, ends = nonconvex["weights"], nonconvex["ends"]
    t, gap = nonconvex["t"], nonconvex["gap"]
    for first, last in _intervals(t, gap):
        ax_weights.axhspan(first, last, color=PALETTE[1], alpha=0.15, lw=0)
    for j in range(ends.shape[1]):
        ax_weights.plot(weights, ends[:, j], ".-", ms=3, lw=0.6, color=PALETTE[j % 7])
    ax_weights.set_xscale("log")
    ax_weights.set(
        xlabel="lambda",
        ylabel="end point t (Pareto set [-1, 1])",
        title="FON: descent on L1 + lambda L2 (red band: gap)",
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            "on FON, some Pareto points are off the front's convex hull and some lie in the gap "
            "(L1'' + lambda L2'' < 0 at their lambda), no gradient-descent end point lies in the "
            "gap, and some start's end points jump across the gap between consecutive lambdas"
        ),
        numbers={
            "lambdas": f"{LAMBDAS[budget]} log-spaced in [0.01, 100]",
            "starts": STARTS[budget],
            "steps": STEPS,
            "fon": summary(nonconvex),
            "sch": summary(convex),
            "sch_holds": claim_holds(convex),
        },
        figure=fig,
    )
