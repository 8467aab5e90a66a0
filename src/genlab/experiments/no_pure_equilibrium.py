r"""No pure equilibrium: best responses cycle, mixtures of strategies settle.

A two-player zero-sum game with payoff matrix :math:`A` (the row player gets :math:`A_{ij}`, the
column player pays it) has a *pure* equilibrium :math:`(i, j)` only if :math:`A_{ij}` is the
largest entry of its column and the smallest of its row. Rock-paper-scissors,

.. math::
    A = \begin{pmatrix} 0 & -1 & 1 \\ 1 & 0 & -1 \\ -1 & 1 & 0 \end{pmatrix},

has none (:math:`\max_i \min_j A_{ij} = -1 < 1 = \min_j \max_i A_{ij}`), so alternating best
responses, each player answering the other's last strategy, cycle forever, as a GAN's two
networks can when each only answers the other's current weights. Mixed strategies
:math:`x, y` (distributions over the pure ones) do have an equilibrium (von Neumann's
minimax theorem), with value :math:`v = \max_x \min_y x^\top A y` (here 0, computed by linear
programming), and answering the *mixture* of all the opponent's past strategies (fictitious
play, Brown 1951) converges to it in every zero-sum game (Robinson, 1951). We measure each
pair of strategies by its exploitability (duality gap)

.. math::
    \epsilon(x, y) = \max_i (A y)_i - \min_j (x^\top A)_j \ge 0,

zero exactly at an equilibrium. Arora et al. (2017) carry this to GANs: the game between
generators and discriminators need not have a pure equilibrium, but an approximate mixed one
exists with finite mixtures, which MIX+GAN trains. The second half of the experiment is the
generator side of that idea on ``ring`` (8 modes): a uniform mixture of :data:`N_COMPONENTS`
small generators (each an MLP with one hidden layer of :data:`COMPONENT_HIDDEN` units; sample
:math:`i` of a batch comes from component :math:`i \bmod k`) against one generator with a hidden
layer of :data:`SINGLE_HIDDEN` units (about the same number of parameters), both trained by
the default GAN recipe (:mod:`genlab.models.gan`) with the same discriminator, and scored by
the modes they capture (:mod:`genlab.stats.modes`).

References:
    von Neumann, "Zur Theorie der Gesellschaftsspiele", Math. Annalen 100, 1928.
    Brown, "Iterative solution of games by fictitious play", 1951; Robinson, "An iterative
    method of solving a game", Annals of Mathematics 54, 1951.
    Arora, Ge, Liang, Ma & Zhang, "Generalization and Equilibrium in Generative Adversarial
    Nets (GANs)", ICML 2017, arXiv:1703.00573 (MIX+GAN).
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor, nn

from genlab.api import resolve_settings
from genlab.data import load
from genlab.data.dataset import DataInfo
from genlab.experiments.base import Budget, ExperimentResult
from genlab.models.gan import GAN, GANConfig
from genlab.nn import MLP
from genlab.report.figures import PALETTE, blank_figure
from genlab.stats.modes import N_SAMPLES, mode_coverage_for
from genlab.train import fit as train_fit

NAME = "no-pure-equilibrium"
CLAIM = (
    "In rock-paper-scissors, which has no pure equilibrium, alternating best responses cycle "
    "forever while best responses to the mixture of past strategies reach the game's value; "
    "on ring, a mixture of 8 small generators captures more modes than one generator of the "
    "same total size."
)
ROCK_PAPER_SCISSORS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
ROUNDS: dict[Budget, int] = {"smoke": 1000, "full": 10_000}
TOLERANCE = 0.05  # fictitious play's final exploitability and value error must be below this
N_COMPONENTS = 8
COMPONENT_HIDDEN = (4,)
SINGLE_HIDDEN = (32,)
DISCRIMINATOR_HIDDEN = (128, 128)
STEPS: dict[Budget, int] = {"smoke": 600, "full": 1000}
SEEDS: dict[Budget, tuple[int, ...]] = {"smoke": (0,), "full": tuple(range(8))}


# ---------------------------------------------------------------------- the matrix game


def pure_equilibria(payoff: np.ndarray) -> list[tuple[int, int]]:
    """The pure equilibria: entries largest in their column and smallest in their row."""
    return [
        (i, j)
        for i in range(payoff.shape[0])
        for j in range(payoff.shape[1])
        if payoff[i, j] == payoff[:, j].max() and payoff[i, j] == payoff[i, :].min()
    ]


def game_value(payoff: np.ndarray) -> float:
    r""":math:`\max_x \min_j (x^\top A)_j` over mixed strategies, by linear programming.

    Maximise :math:`v` subject to :math:`A^\top x \ge v \mathbf 1`, :math:`\mathbf 1^\top x =
    1`, :math:`x \ge 0` (variables :math:`(x, v)`).
    """
    n, m = payoff.shape
    cost = np.r_[np.zeros(n), -1.0]  # minimise -v
    upper = np.c_[-payoff.T, np.ones(m)]  # v - (A^T x)_j <= 0
    equality = np.r_[np.ones(n), 0.0][None, :]
    bounds = [(0, None)] * n + [(None, None)]
    solved = linprog(cost, A_ub=upper, b_ub=np.zeros(m), A_eq=equality, b_eq=[1.0], bounds=bounds)
    return 0.0 - float(solved.fun)  # (not -fun: no "-0.0")


def exploitability(payoff: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    r""":math:`\max_i (A y)_i - \min_j (x^\top A)_j`: what the best deviations would gain."""
    return float((payoff @ y).max() - (x @ payoff).min())


def best_response_play(payoff: np.ndarray, rounds: int, mixture: bool) -> dict[str, Any]:
    r"""Alternating best responses from (0, 0): each round the row player answers the column
    player's strategy, then the column player answers the row player's.

    With ``mixture=False`` each answers the other's last pure strategy; with ``mixture=True``
    the uniform mixture of all the other's past strategies (fictitious play), and the players'
    strategies are those mixtures. Returns the value :math:`x^\top A y` and the
    exploitability after every move (two per round), and each round's pair of pure answers.
    """
    n, m = payoff.shape
    counts = [np.eye(n)[0], np.eye(m)[0]]  # how often each player chose each pure strategy
    last = [0, 0]
    values, gaps, pairs = [], [], []

    def strategy(player: int) -> np.ndarray:
        size = payoff.shape[player]
        return counts[player] / counts[player].sum() if mixture else np.eye(size)[last[player]]

    for _ in range(rounds):
        for player in (0, 1):
            answers = payoff @ strategy(1) if player == 0 else -(strategy(0) @ payoff)
            last[player] = int(np.argmax(answers))
            counts[player][last[player]] += 1
            x, y = strategy(0), strategy(1)
            values.append(float(x @ payoff @ y))
            gaps.append(exploitability(payoff, x, y))
        pairs.append((last[0], last[1]))
    return {"value": values, "exploitability": gaps, "pairs": pairs}


def cycle_length(pairs: list[tuple[int, int]]) -> int | None:
    """The period of the last strategy pairs: smallest ``p`` with ``pairs[-k] == pairs[-k-p]``
    over the last half of the rounds (``None`` if they do not repeat)."""
    half = len(pairs) // 2
    for period in range(1, half // 2 + 1):
        if all(pairs[-k] == pairs[-k - period] for k in range(1, half - period + 1)):
            return period
    return None


def game_claim_holds(
    payoff: np.ndarray, alternating: dict[str, Any], mixed: dict[str, Any], value: float
) -> bool:
    """No pure equilibrium; the alternating best responses cycle with a period > 1 and their
    exploitability never falls below 1 over the second half; the mixed play ends within
    :data:`TOLERANCE` of an equilibrium and of the game's value."""
    late = alternating["exploitability"][len(alternating["exploitability"]) // 2 :]
    period = cycle_length(alternating["pairs"])
    return (
        not pure_equilibria(payoff)
        and period is not None
        and period > 1
        and min(late) >= 1.0
        and mixed["exploitability"][-1] <= TOLERANCE
        and abs(mixed["value"][-1] - value) <= TOLERANCE
    )


# ---------------------------------------------------------------------- mixtures of generators


class MixtureGenerator(nn.Module):
    """A uniform mixture of generators: row ``i`` of ``z`` ``(B, k)`` goes through component
    ``i mod n_components``, so every batch holds (nearly) equal shares of each."""

    def __init__(self, components: list[nn.Module]) -> None:
        super().__init__()
        self.components = nn.ModuleList(components)

    def forward(self, z: Tensor) -> Tensor:
        k = len(self.components)
        outs = [component(z[i::k]) for i, component in enumerate(self.components)]
        x = z.new_empty(len(z), *outs[0].shape[1:])  # (B, *event_shape)
        for i, out in enumerate(outs):
            x[i::k] = out
        return x


class MixtureGAN(GAN):
    """A GAN whose generator is a :class:`MixtureGenerator` of ``n_components`` MLPs with
    hidden layers ``component_hidden`` (the config's ``hidden`` shapes the discriminator)."""

    def __init__(
        self,
        config: GANConfig,
        info: DataInfo,
        n_components: int,
        component_hidden: tuple[int, ...],
    ) -> None:
        self.n_components = n_components
        self.component_hidden = component_hidden
        super().__init__(config, info)

    def build_generator(self) -> nn.Module:
        """The mixture, ``(B, k) -> (B, n_features)`` (vector data only)."""
        sizes = (self.latent_dim, self.info.n_features, self.component_hidden)
        components = [MLP(*sizes, self.config.activation) for _ in range(self.n_components)]
        return MixtureGenerator(components)


def generator_parameters(model: GAN) -> int:
    """Parameters of the generator (all components of a mixture)."""
    return sum(p.numel() for p in model.generator_net.parameters())


def train_mixture(n_components: int, hidden: tuple[int, ...], seed: int, steps: int) -> GAN:
    """A :class:`MixtureGAN` trained on ``ring`` by the default recipe for ``steps`` steps."""
    data = load("ring")
    settings = {"steps": steps, "eval_every": steps, "hidden": DISCRIMINATOR_HIDDEN}
    resolved = resolve_settings("gan", settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MixtureGAN(resolved.model, data.info, n_components, hidden)
    train_fit(model, data, resolved.train, seed=seed, progress=False)
    return model.eval()


def modes_claim_holds(single: list[int], mixture: list[int]) -> bool:
    """The mixture captures more modes than the single generator, on average over seeds."""
    return statistics.fmean(mixture) > statistics.fmean(single)


# ---------------------------------------------------------------------- the experiment


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    payoff, rounds = ROCK_PAPER_SCISSORS, ROUNDS[budget]
    value = game_value(payoff)
    alternating = best_response_play(payoff, rounds, mixture=False)
    mixed = best_response_play(payoff, rounds, mixture=True)
    game_holds = game_claim_holds(payoff, alternating, mixed, value)

    info = load("ring").info
    arms = {
        f"one generator {SINGLE_HIDDEN}": (1, SINGLE_HIDDEN),
        f"mixture of {N_COMPONENTS} x {COMPONENT_HIDDEN}": (N_COMPONENTS, COMPONENT_HIDDEN),
    }
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    shown: dict[str, Tensor] = {}
    parameters: dict[str, int] = {}
    for name, (k, hidden) in arms.items():
        for s in (seed + offset for offset in SEEDS[budget]):
            model = train_mixture(k, hidden, s, STEPS[budget])
            samples = model.sample(N_SAMPLES, generator=torch.Generator().manual_seed(s))
            scored = mode_coverage_for(samples, info)
            row = {"seed": s, "modes_captured": scored.modes_captured}
            rows[name].append({**row, "hq_fraction": scored.hq_fraction})
            shown.setdefault(name, samples)
            parameters[name] = generator_parameters(model)
    single, mixture = ([r["modes_captured"] for r in rows[name]] for name in arms)
    modes_holds = modes_claim_holds(single, mixture)

    fig = blank_figure(16, 3.8)
    ax_value, ax_gap, *ax_samples = fig.subplots(1, 4)
    shown_moves = 60
    for colour, (label, play) in zip(
        (PALETTE[1], PALETTE[0]),
        (("alternating best responses", alternating), ("best responses to the mixture", mixed)),
        strict=True,
    ):
        ax_value.plot(play["value"][:shown_moves], "o-", ms=3, color=colour, label=label)
    ax_value.axhline(value, color="grey", ls=":", label=f"game value {value:g} (LP)")
    ax_value.set(
        xlabel="move (the players alternate)", ylabel="x^T A y", title="rock-paper-scissors: value"
    )
    ax_value.set_ylim(-1.2, 1.9)  # room for the legend above the cycle
    ax_value.legend(fontsize=7, loc="upper center")
    moves = np.arange(1, 2 * rounds + 1)
    ax_gap.loglog(moves, alternating["exploitability"], color=PALETTE[1])
    ax_gap.loglog(moves, mixed["exploitability"], color=PALETTE[0])
    ax_gap.axhline(TOLERANCE, color="grey", ls=":")
    ax_gap.set(
        xlabel="move", ylabel="exploitability (duality gap)", title="distance to equilibrium"
    )
    centres = torch.tensor(info.mode_centres)
    for ax, (colour, (name, samples)) in zip(ax_samples, enumerate(shown.items()), strict=True):
        ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, color=PALETTE[colour * 2], lw=0)
        ax.scatter(centres[:, 0], centres[:, 1], s=14, marker="x", color="black", lw=0.8)
        modes = [r["modes_captured"] for r in rows[name]]
        ax.set_title(
            f"{name}, {parameters[name]} parameters\nmodes captured per seed {modes}", fontsize=8
        )
        ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal", xticks=[], yticks=[])
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=game_holds and modes_holds,
        criterion=(
            "rock-paper-scissors has no pure equilibrium; alternating best responses repeat a "
            "cycle of period > 1 and their exploitability stays >= 1 over the last half of "
            f"the rounds; best responses to the mixture end with exploitability and value error "
            f"<= {TOLERANCE}; and on ring the mixture of generators captures more modes than "
            "the single generator, on average over seeds"
        ),
        numbers={
            "rounds": rounds,
            "pure_equilibria": pure_equilibria(payoff),
            "game_value": value,
            "alternating_cycle_length": cycle_length(alternating["pairs"]),
            "final_exploitability": {
                "alternating": alternating["exploitability"][-1],
                "mixture": mixed["exploitability"][-1],
            },
            "final_value": {
                "alternating": alternating["value"][-1],
                "mixture": mixed["value"][-1],
            },
            "game_holds": game_holds,
            "gan_steps": STEPS[budget],
            "generator_parameters": parameters,
            "modes_captured": {name: [r["modes_captured"] for r in rows[name]] for name in arms},
            "hq_fraction": {name: [r["hq_fraction"] for r in rows[name]] for name in arms},
            "modes_holds": modes_holds,
        },
        figure=fig,
    )
