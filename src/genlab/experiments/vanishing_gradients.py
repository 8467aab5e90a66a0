r"""Vanishing gradients: against a near-optimal discriminator the minimax generator loss stops teaching.

Fix a poor generator :math:`G_\theta(z) = a z + b` (:math:`z \sim \mathcal N(0, 1)`, started far
from the data) and train only the discriminator, towards its optimum. At each discriminator step
measure :math:`\lVert \nabla_\theta L_G \rVert_2`, the norm of the gradient of the generator's
loss with respect to its parameters :math:`\theta = (a, b)`, for three games whose formulas are in
:mod:`genlab.objectives.adversarial`:

- *minimax* (saturating), :math:`L_G = \mathbb E \log(1 - D(G(z)))`: with logit :math:`\ell`,
  :math:`\nabla_\theta L_G = -\mathbb E\,\sigma(\ell)\,\nabla_\theta \ell(G(z))`. As
  :math:`D \to D^* = p / (p + q)` rejects the samples, :math:`\sigma(\ell) \to 0` and the
  gradient vanishes (Arjovsky & Bottou, 2017, Theorem 2.4: it is bounded by a multiple of
  :math:`\lVert D - D^* \rVert`);
- *non-saturating*, :math:`L_G = -\mathbb E \log D(G(z))`: the factor is
  :math:`1 - \sigma(\ell) \to 1`, so the gradient does not vanish (it grows with the logit's
  slope);
- *Wasserstein*, :math:`L_G = -\mathbb E f(G(z))` with a critic kept about 1-Lipschitz by
  the gradient penalty (WGAN-GP) or by weight clipping: :math:`|f'| \approx 1` (GP) between the
  two distributions, so the gradient stays bounded away from zero (Arjovsky et al., 2017).

Minimax and non-saturating share one discriminator (trained by binary cross-entropy); each
Wasserstein critic is trained by its own recipe. Near its optimum, Adam's normalised steps keep
the discriminator jittering, so the saturating gradient flickers by orders of magnitude from one
step to the next; "final" is therefore the median over the last 10% of the steps. Data: the 1-D mixture ``P`` of
:mod:`genlab.experiments.optimal_discriminator`; the generator starts at
:math:`\mathcal N(6, 0.5^2)`.

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, arXiv:1406.2661, Section 3.
    Arjovsky & Bottou, "Towards Principled Methods for Training GANs", ICLR 2017,
    arXiv:1701.04862, Figure 2 and Theorem 2.4.
    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017, arXiv:1701.07875.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from genlab.experiments.base import Budget, ExperimentResult
from genlab.experiments.optimal_discriminator import P, mixture_sample
from genlab.nn import MLP
from genlab.objectives.adversarial import (
    ADVERSARIAL_LOSSES,
    clip_weights_,
    gradient_penalty,
    interpolate,
)
from genlab.optim import adam
from genlab.report.figures import PALETTE, new_figure

NAME = "vanishing-gradients"
CLAIM = (
    "As the discriminator approaches optimality against a fixed poor generator, the gradient of "
    "the minimax (saturating) generator loss vanishes, while the non-saturating loss's and the "
    "Wasserstein critic's do not."
)
STEPS = {"smoke": 500, "full": 3000}
BATCH = 256
GENERATOR_START = (0.5, 6.0)  # (a, b): G(z) = a z + b
FALL = 100.0  # the minimax gradient must fall by at least this factor
CURVES = ("minimax", "nonsaturating", "wasserstein-gp", "wasserstein (clip)")
CLIP = 0.01
GP_WEIGHT = 10.0
BCE_LR = 5e-3
SMOOTH = 25  # steps in the plotted running median (odd)


def fixed_generator() -> nn.Linear:
    """:math:`G(z) = a z + b` at :data:`GENERATOR_START`."""
    g = nn.Linear(1, 1)
    with torch.no_grad():
        g.weight.fill_(GENERATOR_START[0])
        g.bias.fill_(GENERATOR_START[1])
    return g


def generator_grad_norm(g: nn.Linear, critic: nn.Module, loss: str, z: torch.Tensor) -> float:
    r""":math:`\lVert \nabla_\theta L_G \rVert_2` of game ``loss`` at the critic's current weights."""
    g_loss = ADVERSARIAL_LOSSES[loss].generator(critic(g(z)).squeeze(1))
    grads = torch.autograd.grad(g_loss, list(g.parameters()))
    return float(torch.cat([x.flatten() for x in grads]).norm())


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    generator = torch.Generator().manual_seed(seed)
    g = fixed_generator().requires_grad_(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = {
            name: MLP(1, 1, hidden=(64, 64), activation="leaky_relu")
            for name in ("bce", "wasserstein-gp", "wasserstein (clip)")
        }
    optimizers = {
        "bce": adam(nets["bce"].parameters(), lr=BCE_LR),
        "wasserstein-gp": adam(nets["wasserstein-gp"].parameters(), lr=1e-4, betas=(0.5, 0.9)),
        "wasserstein (clip)": torch.optim.RMSprop(
            nets["wasserstein (clip)"].parameters(), lr=5e-5
        ),
    }
    clip_weights_(nets["wasserstein (clip)"], CLIP)
    critic_of = {
        "minimax": "bce",
        "nonsaturating": "bce",
        "wasserstein-gp": "wasserstein-gp",
        "wasserstein (clip)": "wasserstein (clip)",
    }
    norms: dict[str, list[float]] = {name: [] for name in CURVES}
    fake_logit: list[float] = []
    z_eval = torch.randn(1024, 1, generator=generator)
    for _ in range(STEPS[budget] + 1):
        for name in CURVES:
            loss = "wasserstein" if name.startswith("wasserstein") else name
            norms[name].append(generator_grad_norm(g, nets[critic_of[name]], loss, z_eval))
        with torch.no_grad():
            fake_logit.append(float(nets["bce"](g(z_eval)).mean()))
        real = mixture_sample(BATCH, P, generator)
        with torch.no_grad():
            fake = g(torch.randn(BATCH, 1, generator=generator))
        for key, net in nets.items():
            out = net(torch.cat([real, fake])).squeeze(1)
            game = ADVERSARIAL_LOSSES["minimax" if key == "bce" else "wasserstein"]
            loss = game.discriminator(out[:BATCH], out[BATCH:])
            if key == "wasserstein-gp":
                points = interpolate([real], [fake], generator)
                loss = loss + GP_WEIGHT * gradient_penalty(net(points[0]).squeeze(1), points)
            optimizers[key].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[key].step()
            if key == "wasserstein (clip)":
                clip_weights_(net, CLIP)
    window = max(1, STEPS[budget] // 10)
    start = {name: values[0] for name, values in norms.items()}
    final = {name: float(np.median(values[-window:])) for name, values in norms.items()}
    minimum = {name: min(values) for name, values in norms.items()}
    fall = {name: start[name] / final[name] for name in CURVES}
    holds = (
        fall["minimax"] >= FALL
        and fall["nonsaturating"] < FALL
        and minimum["nonsaturating"] > start["nonsaturating"] / 10
        and minimum["wasserstein-gp"] > start["wasserstein-gp"] / 10
    )
    fig, (ax, ax_logit) = new_figure(2, width=4.6)
    steps = np.arange(STEPS[budget] + 1)
    for colour, name in zip(PALETTE, CURVES, strict=False):
        values = np.asarray(norms[name])
        smooth = np.median(sliding_window_view(np.pad(values, (SMOOTH // 2,), "edge"), SMOOTH), 1)
        ax.semilogy(steps, values, color=colour, lw=0.5, alpha=0.35)
        ax.semilogy(steps, smooth, color=colour, lw=1.5, label=name)
    ax.set(
        xlabel="discriminator steps",
        ylabel="||grad_theta L_G||",
        title=f"generator gradient (bold: running median of {SMOOTH})",
    )
    ax.legend(fontsize=7)
    ax_logit.plot(steps, fake_logit, color=PALETTE[0])
    ax_logit.set(
        xlabel="discriminator steps",
        ylabel="mean logit on G(z)",
        title="the discriminator grows confident",
    )
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"the minimax gradient norm (median over the last {window} steps) is >= {FALL:g}x "
            f"below its start, the non-saturating one less than {FALL:g}x, and neither the non-saturating nor the "
            "WGAN-GP one ever drops below a tenth of its start"
        ),
        numbers={
            "steps": STEPS[budget],
            "start_grad_norm": start,
            "final_grad_norm": final,
            "min_grad_norm": minimum,
            "fall_factor": fall,
            "final_window_steps": window,
            "final_mean_fake_logit": fake_logit[-1],
            "every_100_steps": {name: values[::100] for name, values in norms.items()},
        },
        figure=fig,
    )
