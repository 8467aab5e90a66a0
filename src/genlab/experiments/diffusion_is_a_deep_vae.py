r"""A diffusion model is a VAE with :math:`T` latent layers: the more layers, the tighter its bound.

The forward process :math:`q(x_{0:T-1} \mid x)` of a diffusion model is the encoder of a
hierarchical VAE with :math:`T` latent layers, fixed rather than learned; the reverse process
:math:`p(x_{T-1}) \prod_t p(x_{t-1} \mid x_t)\, p(x \mid x_0)` is its decoder, and the
diffusion's variational bound (:func:`~genlab.samplers.diffusion.variational_bound`) is that
VAE's ELBO:

.. math::
    -\log p(x) \le \mathrm{KL}(q(x_{T-1} \mid x) \,\|\, p(x_{T-1}))
    + \sum_{t \ge 1} \mathbb E_q\, \mathrm{KL}(q(x_{t-1} \mid x_t, x) \,\|\, p(x_{t-1} \mid x_t))
    - \mathbb E_q \log p(x \mid x_0).

Its gap is :math:`\mathrm{KL}(q(x_{0:T-1} \mid x) \,\|\, p(x_{0:T-1} \mid x))`. The reverse
steps are Gaussian, and the true reverse step :math:`q(x_{t-1} \mid x_t)` is not: it is a
mixture over the data. The smaller the step, the closer to Gaussian the true reverse step, so
with the same noise levels at the two ends (the log-SNR schedule of
:mod:`genlab.samplers.schedules`, :math:`\lambda_t` linear from :math:`\lambda_{\max}` to
:math:`\lambda_{\min}`) more steps give a tighter bound, and the gap vanishes as :math:`T \to
\infty` (Sohl-Dickstein et al., 2015; Kingma et al., 2021): the sense in which a diffusion model
is an infinitely deep VAE. With :math:`T = 1` it is a one-layer VAE whose encoder adds almost no
noise (the single latent sits at :math:`\lambda_{\max}`), and with Gaussian steps it can only
fit a Gaussian.

**The ideal denoiser, in closed form.** The data is a 1-D mixture
:math:`p(x) = \sum_k w_k \mathcal N(x; \mu_k, s_k^2)` (standardised, as the family standardises
continuous data). For :math:`x_t = a x + \sigma\epsilon` (:math:`a^2 = \bar\alpha_t`,
:math:`\sigma^2 = 1 - \bar\alpha_t`) the posterior of the data is a mixture of Gaussians with

.. math::
    r_k(x_t) \propto w_k\, \mathcal N(x_t; a\mu_k, a^2 s_k^2 + \sigma^2), \quad
    m_k = \mu_k + \frac{a s_k^2 (x_t - a\mu_k)}{a^2 s_k^2 + \sigma^2}, \quad
    v_k = \frac{s_k^2 \sigma^2}{a^2 s_k^2 + \sigma^2},

:math:`\hat x = \mathbb E[x \mid x_t] = \sum_k r_k m_k` and
:math:`v = \operatorname{Var}[x \mid x_t] = \sum_k r_k (v_k + (m_k - \hat x)^2)`. Each term of
the bound is :math:`\mathbb E\, \mathrm{KL}(\mathcal N(c^0_t x + c^t_t x_t, \tilde\beta_t) \,\|\,
\mathcal N(\mu, \sigma_t^2))` over :math:`x \mid x_t`, minimised by matching moments:

.. math::
    \mu = c^0_t \hat x + c^t_t x_t, \qquad \sigma_t^2 = \tilde\beta_t + (c^0_t)^2 v

(at :math:`t = 0`, :math:`c^0_0 = 1`, :math:`\tilde\beta_0 = 0`: the decoder
:math:`\mathcal N(\hat x, v)`). This reverse process is the best any diffusion model with
Gaussian steps can do on this forward process, so its bound is the bound of depth :math:`T`
itself, free of training error. Its expectation over the data is computed by Gauss-Hermite
quadrature over :math:`(x, \epsilon)` for each component, with the family's own terms
(:func:`~genlab.samplers.diffusion.prior_kl`, :func:`~genlab.samplers.diffusion.bound_term`),
and compared with the exact entropy :math:`-\mathbb E \log p(x)`. For Gaussian data the moment
matched steps are exact and every :math:`T` gives the exact likelihood (depth buys nothing):
the claim is about non-Gaussian data.

**Trained models.** Next to it, the family's diffusion models (``fit("diffusion")``, the same
schedule, :math:`T \ge 2`) and a one-layer VAE (``fit("vae")``, one latent, MLP encoder and
decoder, KL warm-up) trained on samples of the same mixture; their bounds (``log_prob``: the
full variational bound, and the ELBO) are measured on a test sample, as gaps to the true
:math:`-\log p(x)` of each test point (paired, with standard errors).

References:
    Sohl-Dickstein et al., "Deep Unsupervised Learning using Nonequilibrium Thermodynamics",
    ICML 2015, arXiv:1503.03585.
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239.
    Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021,
    arXiv:2107.00630 (more steps, tighter bound; the continuous-time limit).
    Bao et al., "Analytic-DPM", ICLR 2022, arXiv:2201.06503 (the optimal reverse variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.api import fit
from genlab.data import DataInfo, Dataset
from genlab.experiments.base import Budget, ExperimentResult
from genlab.report.figures import PALETTE, new_figure
from genlab.samplers.diffusion import (
    Denoised,
    GaussianDecoder,
    ReverseProcess,
    bound_term,
    prior_kl,
)
from genlab.samplers.schedules import NoiseSchedule, log_snr_betas, log_snr_range

NAME = "diffusion-is-a-deep-vae"
CLAIM = (
    "The variational bound of a diffusion model (a VAE with T latent layers and a fixed "
    "encoder) tightens as T grows, towards the exact log-likelihood, and a deep one is tighter "
    "than a one-layer VAE's ELBO."
)
STEP_COUNTS: dict[Budget, tuple[int, ...]] = {
    "smoke": (1, 2, 5, 10, 100),
    "full": (1, 2, 5, 10, 100, 1000),
}
TRAINED_STEP_COUNTS: dict[Budget, tuple[int, ...]] = {
    "smoke": (2, 100),
    "full": (2, 5, 10, 100, 1000),
}
NODES: dict[Budget, int] = {"smoke": 40, "full": 60}  # Gauss-Hermite nodes per dimension
N_TRAIN, N_TEST = 20_000, 5_000
CONTINUOUS_LEVELS = 256  # the family sizes its log-SNR range for continuous data as 256 levels
QUADRATURE_ROWS = 1 << 18  # (x, epsilon, t) rows per pass of the quadrature
TOLERANCE = 1e-5  # nats of quadrature error allowed (against 80-100 nodes: 3e-6 at 40, 3e-7 at 60)
SHRINK = 50  # the ideal gap at the largest T is below 1/SHRINK of the gap at T = 1
NOISE = 3.0  # standard errors a trained model's improvement must exceed
DIFFUSION_SETTINGS: dict[Budget, dict[str, Any]] = {
    "smoke": {"steps": 800},
    "full": {"steps": 2_000},
}
VAE_SETTINGS: dict[Budget, dict[str, Any]] = {
    "smoke": {"steps": 800, "warmup_steps": 300},
    "full": {"steps": 3_000, "warmup_steps": 1_000},
}
DIFFUSION_NETWORK = {
    "hidden": (64, 64), "embed": 32, "dropout": 0.0, "weight_decay": 0.0, "lr": 2e-3,
    "ema_decay": 0.99, "eval_every": 500, "ddim_steps": 2, "octaves": 0,
}  # fmt: skip
VAE_NETWORK = {
    "latent_dim": 1, "hidden": (64, 64), "likelihood": "gaussian", "lr": 1e-3, "patience": None,
}  # fmt: skip


@dataclass(frozen=True)
class Mixture:
    r"""A 1-D Gaussian mixture :math:`p(x) = \sum_k w_k \mathcal N(x; \mu_k, s_k^2)`, float64."""

    weights: Tensor
    means: Tensor
    stds: Tensor

    @classmethod
    def of(cls, weights: list[float], means: list[float], stds: list[float]) -> Mixture:
        """The mixture of these components (lists of equal length, weights summing to 1)."""
        return cls(*(torch.tensor(v, dtype=torch.float64) for v in (weights, means, stds)))

    def moments(self) -> tuple[float, float]:
        r"""Mean :math:`\sum_k w_k\mu_k` and standard deviation
        :math:`(\sum_k w_k (s_k^2 + \mu_k^2) - m^2)^{1/2}`."""
        mean = float((self.weights * self.means).sum())
        second = float((self.weights * (self.stds**2 + self.means**2)).sum())
        return mean, math.sqrt(second - mean**2)

    def standardised(self) -> Mixture:
        """The mixture of :math:`(x - m)/s` (:meth:`moments`): mean 0, variance 1."""
        mean, std = self.moments()
        return Mixture(self.weights, (self.means - mean) / std, self.stds / std)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, 1)`` float32 draws."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k] * noise).float()[:, None]

    def log_prob(self, x: Tensor) -> Tensor:
        r"""``(N,)`` :math:`\log p(x)` of ``(N, 1)`` points, float64."""
        z = (x.double() - self.means) / self.stds  # (N, K)
        log_each = -0.5 * (z**2 + math.log(2 * math.pi)) - self.stds.log()
        return torch.logsumexp(self.weights.log() + log_each, -1)


TWO_GAUSSIANS = Mixture.of([0.5, 0.5], [-1.0, 1.0], [0.25, 0.25])


def schedule(steps: int) -> NoiseSchedule:
    r"""The family's forward process for continuous data with :math:`T` = ``steps``: log-SNR
    linear from :math:`\lambda_{\max}` to :math:`\lambda_{\min}` (:math:`T = 1`: :math:`\lambda_{\max}`)."""
    return NoiseSchedule(log_snr_betas(steps, *log_snr_range(CONTINUOUS_LEVELS)))


def posterior_moments(mixture: Mixture, xt: Tensor, alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(N, 1)`` :math:`\mathbb E[x \mid x_t]` and :math:`\operatorname{Var}[x \mid x_t]` for
    :math:`x_t = \sqrt{\bar\alpha}\,x + \sqrt{1 - \bar\alpha}\,\epsilon` (module docstring).

    Arguments:
        xt: ``(N, 1)`` noisy points; alpha_bar: ``(N, 1)`` their :math:`\bar\alpha_t`.
    """
    a, noise = alpha_bar.sqrt(), 1 - alpha_bar
    spread = alpha_bar * mixture.stds**2 + noise  # (N, K): the variance of x_t given k
    log_r = (
        mixture.weights.log() - 0.5 * spread.log() - (xt - a * mixture.means) ** 2 / (2 * spread)
    )
    r = torch.softmax(log_r, -1)
    m = mixture.means + a * mixture.stds**2 * (xt - a * mixture.means) / spread
    mean = (r * m).sum(-1, keepdim=True)
    var = (r * (mixture.stds**2 * noise / spread + (m - mean) ** 2)).sum(-1, keepdim=True)
    return mean, var


def ideal_process(mixture: Mixture, noise: NoiseSchedule) -> ReverseProcess:
    r"""The reverse process with moment-matched Gaussian steps, :math:`\mu = c^0_t \hat x +
    c^t_t x_t` and :math:`\sigma_t^2 = \tilde\beta_t + (c^0_t)^2 v` (module docstring): the
    best bound any Gaussian-step diffusion model reaches on ``mixture`` (in model units)."""

    def denoise(xt: Tensor, t: Tensor) -> Denoised:
        mean, var = posterior_moments(mixture, xt, noise.alpha_bar(t, xt))
        c0 = noise.at(noise.posterior_coef_x0, t, xt)
        log_var = torch.log(noise.at(noise.posterior_variance, t, xt) + c0**2 * var)
        return Denoised(mean, noise.epsilon_from_x0(xt, t, mean), log_var)

    return ReverseProcess(noise, denoise, GaussianDecoder())


def _hermite(nodes: int) -> tuple[Tensor, Tensor]:
    """Probabilists' Gauss-Hermite nodes and weights summing to 1: ``E f(Z) ~ sum w f(z)``."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return torch.from_numpy(z), torch.from_numpy(w / w.sum())


def expected_bound(mixture: Mixture, steps: int, nodes: int) -> float:
    r""":math:`\mathbb E_{x \sim p}` of the ideal process's bound on :math:`-\log p(x)` (nats,
    model units), by Gauss-Hermite quadrature over :math:`x = \mu_k + s_k z` and
    :math:`\epsilon` for each component: :math:`\sum_k w_k \sum_{ij} w_i w_j\, [\mathrm{KL}_\text{prior}
    + \sum_t L_t](x_{ki}, \epsilon_j)`, with the family's :func:`prior_kl` and :func:`bound_term`."""
    z, w = _hermite(nodes)
    x = (mixture.means[:, None] + mixture.stds[:, None] * z).reshape(-1, 1)  # (K n, 1)
    weight_x = (mixture.weights[:, None] * w).reshape(-1)
    noise = schedule(steps)
    process = ideal_process(mixture, noise)
    total = float((weight_x * prior_kl(noise, x)).sum())
    rows_x = x.repeat_interleave(nodes, 0)  # (K n n, 1): every x with every epsilon
    rows_eps = z.repeat(len(x))[:, None]
    row_weight = weight_x.repeat_interleave(nodes) * w.repeat(len(x))
    per_pass = max(1, QUADRATURE_ROWS // len(rows_x))
    for start in range(0, steps, per_pass):
        t = torch.arange(start, min(start + per_pass, steps)).repeat_interleave(len(rows_x))
        m = len(t) // len(rows_x)
        x0, eps = rows_x.repeat(m, 1), rows_eps.repeat(m, 1)
        xt = noise.q_sample(x0, t, eps)
        terms = bound_term(process, x0, xt, t, process.denoise(xt, t))
        total += float((row_weight.repeat(m) * terms).sum())
    return total


def entropy(mixture: Mixture, nodes: int) -> float:
    r""":math:`-\mathbb E_p \log p(x) = -\sum_k w_k \sum_i w_i \log p(\mu_k + s_k z_i)` (nats),
    by Gauss-Hermite quadrature."""
    z, w = _hermite(nodes)
    x = (mixture.means[:, None] + mixture.stds[:, None] * z).reshape(-1, 1)
    return -float(((mixture.weights[:, None] * w).reshape(-1) * mixture.log_prob(x)).sum())


def tightens(gaps: list[float]) -> bool:
    """The ideal gaps (ascending T) are bounds (:math:`\\ge` -:data:`TOLERANCE`), never grow
    (within :data:`TOLERANCE`), and fall by more than :data:`SHRINK` times from the first,
    which exceeds :data:`TOLERANCE`."""
    return (
        all(g >= -TOLERANCE for g in gaps)
        and all(b <= a + TOLERANCE for a, b in zip(gaps, gaps[1:], strict=False))
        and gaps[0] > TOLERANCE
        and gaps[-1] * SHRINK < gaps[0]
    )


def claim_holds(gaps: list[float], improvements: dict[str, tuple[float, float]]) -> bool:
    """The ideal gaps :func:`tightens`, and every trained improvement (mean paired difference
    of bounds, its standard error) exceeds :data:`NOISE` standard errors."""
    return tightens(gaps) and all(mean > NOISE * se for mean, se in improvements.values())


def mixture_data(mixture: Mixture, seed: int) -> Dataset:
    """:data:`N_TRAIN` and :data:`N_TEST` draws of ``mixture``, with its true density."""
    generator = torch.Generator().manual_seed(seed)
    x_train, x_test = mixture.sample(N_TRAIN, generator), mixture.sample(N_TEST, generator)
    info = DataInfo(
        name="two-gaussians",
        event_shape=(1,),
        kind="vector",
        value_range=(float(x_train.min()), float(x_train.max())),
        has_density=True,
    )
    return Dataset(x_train, x_test, info, true_log_prob=mixture.log_prob)


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    return float(values.mean()), float(values.std() / len(values) ** 0.5)


def run(seed: int = 0, budget: Budget = "smoke") -> ExperimentResult:
    step_counts = STEP_COUNTS[budget]
    _, data_std = TWO_GAUSSIANS.moments()
    unit = TWO_GAUSSIANS.standardised()
    jacobian = math.log(data_std)  # nats: model units -> data units
    exact = entropy(unit, NODES[budget]) + jacobian
    ideal = [expected_bound(unit, s, NODES[budget]) + jacobian for s in step_counts]
    gaps = [b - exact for b in ideal]

    data = mixture_data(TWO_GAUSSIANS, seed)
    x = data.x_test
    truth = TWO_GAUSSIANS.log_prob(x)
    bounds: dict[str, Tensor] = {}  # per test point, nats, data units
    samples: dict[str, Tensor] = {}
    trained_steps = list(TRAINED_STEP_COUNTS[budget])
    for steps in trained_steps:
        model = fit(
            "diffusion", data, seed=seed, timesteps=steps, **DIFFUSION_NETWORK,
            **DIFFUSION_SETTINGS[budget],
        )  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        bounds[f"T={steps}"] = -model.log_prob(x, generator=generator, progress=False).double()
        if steps in (trained_steps[0], trained_steps[-1]):  # the figure shows the two ends
            samples[f"diffusion T={steps}"] = model.sample(
                N_TEST, generator=generator, progress=False
            )
    vae = fit("vae", data, seed=seed, **VAE_NETWORK, **VAE_SETTINGS[budget])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bounds["VAE"] = -vae.log_prob(x, k=1, generator=generator).double()
        samples["VAE"] = vae.sample(N_TEST, generator=generator)
    trained = {name: _mean_and_error(b + truth) for name, b in bounds.items()}
    shallow, deep = f"T={trained_steps[0]}", f"T={trained_steps[-1]}"
    improvements = {
        f"{shallow} - {deep}": _mean_and_error(bounds[shallow] - bounds[deep]),
        f"VAE - {deep}": _mean_and_error(bounds["VAE"] - bounds[deep]),
    }
    holds = claim_holds(gaps, improvements)
    gaussian_fit = 0.5 * math.log(2 * math.pi * math.e) + jacobian  # 1/2 log(2 pi e s^2)

    fig, (ax_bound, ax_gap, ax_data) = new_figure(3, width=4.2)
    diffusion_names = [f"T={s}" for s in trained_steps]
    ax_bound.plot(step_counts, ideal, "o-", color=PALETTE[0], label="diffusion, ideal denoiser")
    ax_bound.errorbar(
        trained_steps, [trained[n][0] + exact for n in diffusion_names],
        yerr=[NOISE * trained[n][1] for n in diffusion_names], fmt="s", color=PALETTE[1], ms=4,
        label="diffusion, trained (test)",
    )  # fmt: skip
    ax_bound.axhline(trained["VAE"][0] + exact, color=PALETTE[2], ls="--", label="one-layer VAE")
    ax_bound.axhline(gaussian_fit, color="grey", ls=":", label="best Gaussian")
    ax_bound.axhline(exact, color="black", label="exact -E log p(x)")
    ax_bound.set_xscale("log")
    ax_bound.set(xlabel="diffusion steps T (latent layers)", ylabel="bound on -log p(x) (nats)")
    ax_bound.legend(fontsize=7)
    ax_gap.plot(step_counts, gaps, "o-", color=PALETTE[0], label="ideal denoiser")
    ax_gap.errorbar(
        trained_steps, [trained[n][0] for n in diffusion_names],
        yerr=[NOISE * trained[n][1] for n in diffusion_names], fmt="s", color=PALETTE[1], ms=4,
        label="trained",
    )  # fmt: skip
    ax_gap.axhline(trained["VAE"][0], color=PALETTE[2], ls="--", label="one-layer VAE")
    ax_gap.set_xscale("log")
    ax_gap.set_yscale("symlog", linthresh=1e-5)
    ax_gap.set_ylim(bottom=0)
    ax_gap.set(
        xlabel="diffusion steps T", ylabel="bound - (-log p) (nats)",
        title=f"the gap (bars: {NOISE:g} standard errors)",
    )  # fmt: skip
    ax_gap.legend(fontsize=7)
    grid = torch.linspace(-3, 3, 400, dtype=torch.float64)[:, None]
    ax_data.plot(grid[:, 0], TWO_GAUSSIANS.log_prob(grid).exp(), color="black", label="p(x)")
    for i, (name, s) in enumerate(samples.items()):
        ax_data.hist(
            s[:, 0].numpy(), bins=90, range=(-3, 3), density=True, histtype="step",
            color=PALETTE[(i + 1) % len(PALETTE)], label=f"{name} samples",
        )  # fmt: skip
    ax_data.set(xlabel="x", ylabel="density", title="the data and the trained models")
    ax_data.legend(fontsize=7)
    return ExperimentResult(
        name=NAME,
        claim=CLAIM,
        holds=holds,
        criterion=(
            f"with the ideal denoiser, the bound's gap to -E log p is >= 0 and never grows with "
            f"T (within {TOLERANCE:g} nats of quadrature error), and it falls more than "
            f"{SHRINK}-fold from T=1 to T={step_counts[-1]}; trained, the {deep} diffusion's "
            f"test bound is below the {shallow} diffusion's and below the one-layer VAE's ELBO "
            f"by more than {NOISE:g} standard errors (paired over test points)"
        ),
        numbers={
            "data": "0.5 N(-1, 0.25^2) + 0.5 N(1, 0.25^2), 1-D",
            "exact_nll": exact,
            "gaussian_fit_nll": gaussian_fit,
            "steps": list(step_counts),
            "ideal_bound": ideal,
            "ideal_gap": gaps,
            "trained_gap": {name: {"mean": m, "se": se} for name, (m, se) in trained.items()},
            "improvements": {
                name: {"mean": m, "se": se} for name, (m, se) in improvements.items()
            },
            "trained_settings": {
                "diffusion": {**DIFFUSION_NETWORK, **DIFFUSION_SETTINGS[budget]},
                "vae": {**VAE_NETWORK, **VAE_SETTINGS[budget]},
            },
        },
        figure=fig,
    )
