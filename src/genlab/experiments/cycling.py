r"""Cycling in games: gradient descent-ascent on the bilinear game :math:`\min_x \max_y\, xy`.

The only equilibrium is :math:`(0, 0)`. With step :math:`\eta`:

- simultaneous updates :math:`(x, y) \leftarrow (x - \eta y,\ y + \eta x)` multiply the distance to
  the equilibrium by :math:`\sqrt{1 + \eta^2}` every step: they spiral outwards;
- alternating updates :math:`x \leftarrow x - \eta y`, then :math:`y \leftarrow y + \eta x` are
  area-preserving: they cycle around the equilibrium forever, never converging;
- the running average of the cycling iterates converges to the equilibrium (the classic fix
  behind generator averaging);
- extragradient (Korpelevich, 1976) and optimistic GDA (Daskalakis et al., 2018,
  arXiv:1711.00141) converge outright.
"""

from __future__ import annotations

import math

import numpy as np

from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import PALETTE, new_figure

NAME = "cycling"
CLAIM = (
    "On min_x max_y xy, simultaneous gradient descent-ascent spirals away, alternating updates "
    "cycle, and the average of the cycling iterates converges to the equilibrium."
)
STEP = 0.1
STEPS = {"smoke": 5_000, "full": 50_000}
TOLERANCE = 0.05


def trajectories(start: tuple[float, float], eta: float, steps: int) -> dict[str, np.ndarray]:
    """``(steps + 1, 2)`` iterates of each update rule from ``start``."""
    rules = {
        "simultaneous": lambda x, y, px, py: (x - eta * y, y + eta * x),
        "alternating": lambda x, y, px, py: (x - eta * y, y + eta * (x - eta * y)),
        "extragradient": lambda x, y, px, py: (
            x - eta * (y + eta * x),
            y + eta * (x - eta * y),
        ),
        "optimistic": lambda x, y, px, py: (
            x - 2 * eta * y + eta * py,
            y + 2 * eta * x - eta * px,
        ),
    }
    out = {}
    for name, rule in rules.items():
        path = np.empty((steps + 1, 2))
        path[0] = start
        previous = start
        for t in range(steps):
            x, y = path[t]
            path[t + 1] = rule(x, y, *previous)
            previous = (x, y)
        out[name] = path
    out["alternating (average)"] = (
        np.cumsum(out["alternating"], axis=0) / np.arange(1, steps + 2)[:, None]
    )
    return out


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    """Run the four update rules from a seeded start on the unit circle (the game is deterministic)."""
    angle = np.random.default_rng(seed).uniform(0, 2 * math.pi)
    start = (math.cos(angle), math.sin(angle))
    paths = trajectories(start, STEP, STEPS[budget])
    distance = {name: np.linalg.norm(path, axis=1) for name, path in paths.items()}
    final = {name: float(d[-1]) for name, d in distance.items()}
    cycling_min = float(distance["alternating"].min())
    holds = (
        final["simultaneous"] > 10.0
        and cycling_min > 0.5
        and final["alternating (average)"] < TOLERANCE
        and final["extragradient"] < TOLERANCE
        and final["optimistic"] < TOLERANCE
    )
    fig, (ax_paths, ax_distance) = new_figure(2)
    window = 400
    for color, (name, path) in zip(PALETTE, paths.items(), strict=False):
        shown = path[: window if name == "simultaneous" else len(path)]
        ax_paths.plot(shown[:, 0], shown[:, 1], lw=0.8, color=color, label=name)
        ax_distance.semilogy(distance[name], lw=1.0, color=color, label=name)
    ax_paths.plot(0, 0, "k*", ms=10)
    ax_paths.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", title="iterates (x, y)")
    ax_paths.legend(fontsize=7, loc="upper right")
    ax_distance.axhline(TOLERANCE, color="grey", ls=":", lw=1)
    ax_distance.set(xlabel="step", ylabel="distance to equilibrium", title=f"step size {STEP}")
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"simultaneous ends > 10 from the equilibrium; alternating never comes within 0.5; "
            f"its running average, extragradient and optimistic end within {TOLERANCE}"
        ),
        numbers={
            "final_distance": final,
            "alternating_min_distance": cycling_min,
            "step_size": STEP,
        },
        figure=fig,
    )
