r"""Mode collapse: a GAN whose discriminator is too weak puts its samples on a few modes, or none.

The generator is only pushed towards a mode when the discriminator can tell that mode's data
from the samples; a discriminator too small to carve the plane into the mixture's modes lets
the generator pile its samples into one region (Arora et al., 2017: a mixture of
:math:`\tilde O(p \log p / \epsilon^2)` points can fool, to within :math:`\epsilon`, every
discriminator with :math:`p` parameters, so a small discriminator cannot demand diversity).
We train GAN variants on ``ring`` (8 modes) and ``grid`` (25 modes) over several seeds and
score 2,500 samples of each by the VEEGAN/PacGAN protocol of :mod:`genlab.stats.modes`:
*modes captured* (modes that are the nearest mode of at least one high-quality sample, one within
3 component stds) and the *high-quality fraction*. Since a collapsed generator often sits
between modes (no high-quality sample at all), we also count the *modes reached*: modes that are
the nearest mode of any sample, whatever its distance (the same metric with an infinite radius).

Variants (all from :mod:`genlab.models.gan`):

- ``default``: the documented recipe (non-saturating loss, 4x128 MLPs, R1, EMA generator),
  shortened to :data:`STEPS` steps so that the whole sweep fits in three minutes on two cores
  (the 20,000-step recipe covers every mode of both datasets over 5 seeds, README);
- ``no R1, no EMA``: the same networks without the R1 penalty and the weight average;
- ``tiny discriminator``: the default recipe with the discriminator replaced by an MLP with
  one hidden layer of :data:`TINY_HIDDEN` units.

References:
    Srivastava et al., "VEEGAN", NeurIPS 2017, arXiv:1705.07761 (the protocol).
    Lin et al., "PacGAN", NeurIPS 2018, arXiv:1712.04086.
    Metz et al., "Unrolled Generative Adversarial Networks", ICLR 2017, arXiv:1611.02163.
    Arora et al., "Generalization and Equilibrium in GANs", ICML 2017, arXiv:1703.00573.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch
from torch import nn

from genlab.api import build_model, resolve_settings
from genlab.data import Dataset, load
from genlab.experiments.base import Budget, ExperimentResult
from genlab.models.gan import GAN
from genlab.nn import MLP
from genlab.report.figures import PALETTE, blank_figure
from genlab.stats.modes import N_SAMPLES, mode_coverage, mode_coverage_for
from genlab.train import fit as train_fit

NAME = "mode-collapse"
CLAIM = (
    "A GAN with a tiny discriminator collapses: its samples pile up near a few modes of ring and "
    "grid and capture almost none, while the default recipe, trained as long, captures (nearly) "
    "all of them."
)
TINY_HIDDEN = (8,)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no R1, no EMA": {"r1_weight": 0.0, "ema_decay": 0.0},
    "tiny discriminator": {},
}
TINY = "tiny discriminator"
DATASETS = ("ring", "grid")
STEPS = {"smoke": 300, "full": 1000}
SEEDS = {"smoke": (0,), "full": (0, 1)}
SMOKE_VARIANTS = ("default", TINY)
SMOKE_DATASETS = ("ring",)
COVERED = 0.9  # the fraction of modes the default recipe must capture
FRAME = 1.35  # plotted half-width, in units of the centres' largest coordinate


def train_variant(data: Dataset, variant: str, seed: int, steps: int) -> GAN:
    """A GAN of ``variant`` (see module) trained for ``steps`` steps, in memory."""
    resolved = resolve_settings("gan", {"steps": steps, **VARIANTS[variant]})
    model = build_model("gan", resolved.model, data.info, seed)
    if variant == TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.discriminator = nn.Sequential(
                nn.Flatten(), MLP(data.info.n_features, 1, TINY_HIDDEN, "leaky_relu")
            )
    train_fit(model, data, resolved.train, seed=seed, progress=False)
    return model.eval()


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    variants = SMOKE_VARIANTS if budget == "smoke" else tuple(VARIANTS)
    datasets = SMOKE_DATASETS if budget == "smoke" else DATASETS
    seeds = tuple(seed + s for s in SEEDS[budget])
    rows: list[dict[str, Any]] = []
    shown: dict[tuple[str, str], torch.Tensor] = {}
    for name in datasets:
        data = load(name)
        centres = torch.tensor(data.info.mode_centres)
        for variant in variants:
            for s in seeds:
                model = train_variant(data, variant, s, STEPS[budget])
                samples = model.sample(N_SAMPLES, generator=torch.Generator().manual_seed(s))
                scored = mode_coverage_for(samples, data.info)
                reached = mode_coverage(samples, centres, math.inf)
                rows.append({
                    "data": name, "variant": variant, "seed": s,
                    "modes_captured": scored.modes_captured, "n_modes": scored.n_modes,
                    "hq_fraction": scored.hq_fraction, "modes_reached": reached.modes_captured,
                })  # fmt: skip
                if s == seeds[0]:
                    shown[name, variant] = samples
    summary = {
        f"{name}/{variant}": {
            key: statistics.fmean(r[key] for r in rows if (r["data"], r["variant"]) == (name, variant))
            for key in ("modes_captured", "hq_fraction", "modes_reached")
        }
        for name in datasets
        for variant in variants
    }  # fmt: skip
    holds = all(
        all(
            r["modes_captured"] >= COVERED * r["n_modes"]
            for r in rows
            if (r["data"], r["variant"]) == (name, "default")
        )
        and summary[f"{name}/{TINY}"]["modes_captured"]
        < summary[f"{name}/default"]["modes_captured"]
        and max(r["modes_captured"] for r in rows if (r["data"], r["variant"]) == (name, TINY))
        < min(r["modes_captured"] for r in rows if (r["data"], r["variant"]) == (name, "default"))
        for name in datasets
    )
    fig = blank_figure(2.9 * len(variants), 2.9 * len(datasets), dpi=90)
    axes = fig.subplots(len(datasets), len(variants), squeeze=False)
    for i, name in enumerate(datasets):
        centres = torch.tensor(load(name).info.mode_centres)
        half_width = FRAME * float(centres.abs().max())
        for j, variant in enumerate(variants):
            ax, samples = axes[i, j], shown[name, variant]
            off = samples.abs().amax(1) > half_width
            edge = 0.97 * half_width  # off-frame samples are drawn on the frame's edge
            inside, clipped = samples[~off], samples[off].clamp(-edge, edge)
            ax.scatter(inside[:, 0], inside[:, 1], s=1, alpha=0.4, color=PALETTE[j], lw=0)
            ax.scatter(clipped[:, 0], clipped[:, 1], s=8, color="#555555", lw=0)
            ax.scatter(centres[:, 0], centres[:, 1], s=12, marker="x", color="black", lw=0.8)
            mean = summary[f"{name}/{variant}"]
            outside = float(off.double().mean())
            ax.set_title(
                f"{name}, {variant}\nmodes {mean['modes_captured']:.1f}/{len(centres)}, "
                f"hq {mean['hq_fraction']:.2f}"
                + (f", {outside:.0%} off the frame (grey)" if outside > 0.01 else ""),
                fontsize=8,
            )
            limits = (-half_width, half_width)
            ax.set(xticks=[], yticks=[], aspect="equal", xlim=limits, ylim=limits)
    fig.suptitle(
        f"samples of seed {seeds[0]} (x: modes); means over seeds {list(seeds)}, "
        f"{STEPS[budget]} steps",
        fontsize=9,
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"on every dataset, every seed of the default recipe captures >= {COVERED:.0%} of the "
            "modes, and every "
            "seed of the tiny discriminator captures fewer modes than every default seed"
        ),
        numbers={"steps": STEPS[budget], "seeds": list(seeds), "summary": summary, "runs": rows},
        figure=fig,
    )
