r"""The Gaussian forward process of diffusion models and the lists of timesteps samplers visit.

Timesteps are 0-indexed as in diffusers: :math:`t = 0, \dots, T-1`, with

.. math::
    q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I), \qquad
    q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I), \qquad
    \bar\alpha_t = \prod_{s \le t} (1 - \beta_s),

where ":math:`x_{-1}`" is the data (the papers' :math:`x_0`; their step :math:`t` is our
:math:`t - 1`). The forward posterior is Gaussian (Ho et al., 2020, eqs. 6-7):

.. math::
    q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(c^0_t x_0 + c^t_t x_t,\ \tilde\beta_t I\big), \quad
    c^0_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}, \quad
    c^t_t = \frac{\sqrt{1 - \beta_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}, \quad
    \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t,

with :math:`\bar\alpha_{-1} = 1` (so at :math:`t = 0` the posterior is the data itself).

Schedules (:data:`BETA_SCHEDULES`):

- ``"linear"``: :math:`\beta_t` evenly spaced from :math:`10^{-4}` to :math:`0.02`, scaled by
  :math:`1000/T` so that every :math:`T` gives about the same process (Ho et al., 2020;
  Nichol & Dhariwal, 2021);
- ``"cosine"``: :math:`\bar\alpha(t) = \cos^2\!\big(\frac{t/T + s}{1 + s}\frac\pi2\big)` with
  :math:`s = 0.008` and :math:`\beta_t = \min(1 - \bar\alpha(t+1)/\bar\alpha(t), 0.999)`
  (Nichol & Dhariwal, 2021; diffusers' ``"squaredcos_cap_v2"``);
- ``"log_snr"``: the log signal-to-noise ratio :math:`\lambda_t = \log(\bar\alpha_t / (1 -
  \bar\alpha_t))` falls linearly from :math:`\lambda_{\max}` to :math:`\lambda_{\min}`
  (the fixed schedule of variational diffusion models, Kingma et al., 2021), so
  :math:`\bar\alpha_t = \operatorname{sigmoid}(\lambda_t)`. Its end points can be sized to
  the data (:func:`log_snr_range`).

All quantities are float64 (at :math:`T = 1000` the smallest :math:`1 - \bar\alpha_t` is
:math:`10^{-4}`), cast to the dtype of the tensors they multiply.

References:
    Sohl-Dickstein et al., "Deep Unsupervised Learning using Nonequilibrium Thermodynamics",
    ICML 2015, arXiv:1503.03585.
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239.
    Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021,
    arXiv:2102.09672.
    Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021,
    arXiv:2107.00630.
    Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502.
    Lin, Liu, Li & Yang, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
    WACV 2024, arXiv:2305.08891 (timestep spacings).
    Karras, Aittala, Aila & Laine, "Elucidating the Design Space of Diffusion-Based
    Generative Models", NeurIPS 2022, arXiv:2206.00364 (training noise levels).
    Kingma & Gao, "Understanding Diffusion Objectives as the ELBO with Simple Data
    Augmentation", NeurIPS 2023, arXiv:2303.00848 (weightings over noise levels).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from genlab.config import check

BetaSchedule = Literal["linear", "cosine", "log_snr"]
BETA_SCHEDULES: tuple[str, ...] = get_args(BetaSchedule)
Spacing = Literal["trailing", "linspace", "leading"]
SPACINGS: tuple[str, ...] = get_args(Spacing)
COSINE_OFFSET = 0.008
MAX_BETA = 0.999


def linear_betas(timesteps: int, start: float = 1e-4, end: float = 0.02) -> Tensor:
    r"""``(T,)`` :math:`\beta_t` evenly spaced from ``start`` to ``end``, both scaled by :math:`1000/T`."""
    scale = 1000.0 / timesteps
    return torch.linspace(scale * start, scale * end, timesteps, dtype=torch.float64, device="cpu")


def cosine_betas(timesteps: int, offset: float = COSINE_OFFSET) -> Tensor:
    r"""``(T,)`` :math:`\beta_t = \min(1 - \bar\alpha(t+1)/\bar\alpha(t), 0.999)`, the cosine
    :math:`\bar\alpha(t) = \cos^2(\frac{t/T + s}{1 + s} \frac\pi2)` (Nichol & Dhariwal, eq. 17)."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64, device="cpu") / timesteps
    alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)


def log_snr_betas(timesteps: int, log_snr_max: float, log_snr_min: float) -> Tensor:
    r"""``(T,)`` :math:`\beta_t` with :math:`\lambda_t` linear from :math:`\lambda_{\max}` (at
    :math:`t = 0`) to :math:`\lambda_{\min}` (at :math:`T - 1`), :math:`\bar\alpha_t =
    \operatorname{sigmoid}(\lambda_t)` and :math:`\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}`.

    Computed as :math:`\beta_t = -\operatorname{expm1}(\log\bar\alpha_t - \log\bar\alpha_{t-1})`
    with :math:`\log \bar\alpha = \log\operatorname{sigmoid}(\lambda)`, without cancellation.
    """
    check(log_snr_max > log_snr_min, "log_snr_max must exceed log_snr_min")
    log_snr = torch.linspace(
        log_snr_max, log_snr_min, timesteps, dtype=torch.float64, device="cpu"
    )
    log_alpha_bar = torch.nn.functional.logsigmoid(log_snr)
    previous = torch.cat([log_alpha_bar.new_zeros(1), log_alpha_bar[:-1]])
    return -torch.expm1(log_alpha_bar - previous)


def log_snr_range(
    levels: int, *, resolution: float = 6.0, prior: float = 1e-3
) -> tuple[float, float]:
    r"""End points :math:`(\lambda_{\max}, \lambda_{\min})` of a ``"log_snr"`` schedule sized to data.

    For :math:`L` levels scaled to :math:`[-1, 1]` (bins of half-width :math:`h = 1/(L-1)`),
    the least noisy step has noise :math:`\sigma/\alpha = h / r` (``resolution`` :math:`r`:
    the decoder then tells the bins apart with near certainty), so
    :math:`\lambda_{\max} = 2 \log(r (L - 1))`; the noisiest has
    :math:`\bar\alpha_{T-1} = ` ``prior`` (the prior term is then about
    :math:`\tfrac12 \bar\alpha \lVert x \rVert^2` nats), :math:`\lambda_{\min} =
    \log(\bar\alpha / (1 - \bar\alpha))`.

    Example:
        >>> [round(v, 2) for v in log_snr_range(17)]
        [9.13, -6.91]
    """
    return 2.0 * math.log(resolution * (levels - 1)), math.log(prior / (1.0 - prior))


def make_betas(
    schedule: BetaSchedule,
    timesteps: int,
    *,
    log_snr: tuple[float, float] | None = None,
) -> Tensor:
    """``(T,)`` float64 :math:`\\beta_t` of a named schedule (``log_snr``: its end points)."""
    check(
        schedule in BETA_SCHEDULES, f"schedule must be one of {BETA_SCHEDULES}, got {schedule!r}"
    )
    check(timesteps >= 2, f"timesteps must be >= 2, got {timesteps}")
    if schedule == "linear":
        return linear_betas(timesteps)
    if schedule == "cosine":
        return cosine_betas(timesteps)
    check(log_snr is not None, "the log_snr schedule needs its end points (log_snr_range)")
    return log_snr_betas(timesteps, *log_snr)  # type: ignore[misc]


def timesteps(total: int, steps: int, spacing: Spacing = "trailing") -> Tensor:
    r"""``(S,)`` the timesteps a sampler visits, in the order it visits them (descending).

    A sampler goes from ``t[i]`` to ``t[i + 1]`` and from the last to the data (:math:`t = -1`,
    :math:`\bar\alpha = 1`): the previous timestep is always the next entry of this list,
    never :math:`t - T/S` arithmetic (which points elsewhere when :math:`S` does not divide
    :math:`T`). Spacings (the names of diffusers' ``timestep_spacing``; Lin et al., 2024,
    table 2):

    - ``"trailing"`` (default): :math:`\operatorname{round}(T - iT/S) - 1`,
      :math:`i = 0..S-1`: starts at :math:`T - 1`, where :math:`x_t` is closest to the
      :math:`\mathcal N(0, I)` prior the samplers start from;
    - ``"linspace"``: :math:`\operatorname{round}(\mathrm{linspace}(0, T - 1, S))`, reversed:
      starts at :math:`T - 1` and ends at 0;
    - ``"leading"``: :math:`i \lfloor T/S \rfloor`, reversed (diffusers' default): ends at 0 but
      starts at :math:`(S-1)\lfloor T/S \rfloor < T - 1`, so the first step treats a draw of the
      prior as a less noisy :math:`x_t` than it is. Kept to compare with diffusers.

    With :math:`S = T` every spacing is :math:`T-1, \dots, 0`.

    Example:
        >>> timesteps(10, 3).tolist(), timesteps(10, 3, "linspace").tolist()
        ([9, 6, 2], [9, 4, 0])
    """
    check(spacing in SPACINGS, f"spacing must be one of {SPACINGS}, got {spacing!r}")
    check(1 <= steps <= total, f"steps must be in [1, {total}], got {steps}")
    if spacing == "trailing":
        t = torch.round(torch.arange(total, 0, -total / steps, dtype=torch.float64)) - 1
    elif spacing == "linspace":
        t = torch.linspace(0, total - 1, steps, dtype=torch.float64).round().flip(0)
    else:
        t = (torch.arange(steps, dtype=torch.float64) * (total // steps)).flip(0)
    return t.long()


class NoiseSchedule(nn.Module):
    r"""The forward process of :math:`T` steps and its posterior (module docstring), as buffers.

    The buffers are float64 and not saved in state dicts (they follow from the betas); the
    betas are built on the CPU, also under a ``meta`` device context (sizing a model).

    Arguments:
        betas: ``(T,)`` :math:`\beta_t \in (0, 1)`.

    Example:
        >>> schedule = NoiseSchedule(linear_betas(1000))
        >>> round(float(schedule.alphas_cumprod[-1]), 6)
        4e-05
    """

    betas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    posterior_variance: Tensor
    posterior_log_variance: Tensor
    posterior_coef_x0: Tensor
    posterior_coef_xt: Tensor
    log_snr: Tensor

    def __init__(self, betas: Tensor) -> None:
        super().__init__()
        betas = betas.to(torch.float64)
        check(bool(((betas > 0) & (betas < 1)).all()), "every beta must lie in (0, 1)")
        alphas_cumprod = torch.cumprod(1 - betas, 0)
        prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        variance = betas * (1 - prev) / (1 - alphas_cumprod)
        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": prev,
            "posterior_variance": variance,
            # log of beta-tilde with its t = 0 value (0) replaced by t = 1's (Nichol & Dhariwal):
            # the smallest variance a reverse step can be given
            "posterior_log_variance": torch.log(torch.cat([variance[1:2], variance[1:]])),
            "posterior_coef_x0": betas * prev.sqrt() / (1 - alphas_cumprod),
            "posterior_coef_xt": (1 - betas).sqrt() * (1 - prev) / (1 - alphas_cumprod),
            # lambda_t = log(alpha-bar / (1 - alpha-bar)), without cancellation near 1
            "log_snr": alphas_cumprod.log() - torch.log1p(-alphas_cumprod),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    @property
    def total(self) -> int:
        """The number of steps :math:`T`."""
        return len(self.betas)

    def at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t]`` shaped ``(N, 1, ..., 1)`` to broadcast over ``like`` ``(N, ...)``, in its dtype.

        ``t`` may hold -1 for the data (:math:`\\bar\\alpha = 1`) only through
        :meth:`alpha_bar`.
        """
        return values[t].to(like.dtype).view(-1, *(1,) * (like.dim() - 1))

    def alpha_bar(self, t: Tensor, like: Tensor) -> Tensor:
        r""":math:`\bar\alpha_t` shaped to broadcast over ``like``; :math:`\bar\alpha_{-1} = 1`."""
        values = torch.cat([self.alphas_cumprod, self.alphas_cumprod.new_ones(1)])
        return self.at(values, t, like)  # index -1 reads the appended 1

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon`, ``(N, ...)``."""
        alpha_bar = self.at(self.alphas_cumprod, t, x0)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def q_posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean ``(N, ...)`` and variance ``(N, 1, ...)`` of :math:`q(x_{t-1} \mid x_t, x_0)`."""
        mean = (
            self.at(self.posterior_coef_x0, t, xt) * x0
            + self.at(self.posterior_coef_xt, t, xt) * xt
        )
        return mean, self.at(self.posterior_variance, t, xt)

    def epsilon_from_x0(self, xt: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        r""":math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}\, x_0) / \sqrt{1 - \bar\alpha_t}`."""
        alpha_bar = self.at(self.alphas_cumprod, t, xt)
        return (xt - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()

    def x0_from_epsilon(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon) / \sqrt{\bar\alpha_t}`."""
        alpha_bar = self.at(self.alphas_cumprod, t, xt)
        return (xt - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    def x0_from_v(self, xt: Tensor, t: Tensor, v: Tensor) -> Tensor:
        r""":math:`x_0 = \sqrt{\bar\alpha_t}\, x_t - \sqrt{1 - \bar\alpha_t}\, v` for the velocity
        :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1 - \bar\alpha_t}\, x_0` (Salimans & Ho,
        "Progressive Distillation", ICLR 2022, arXiv:2202.00512)."""
        alpha_bar = self.at(self.alphas_cumprod, t, xt)
        return alpha_bar.sqrt() * xt - (1 - alpha_bar).sqrt() * v

    def velocity(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        r""":math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1 - \bar\alpha_t}\, x_0`."""
        alpha_bar = self.at(self.alphas_cumprod, t, x0)
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0

    def learned_log_variance(self, fraction: Tensor, t: Tensor) -> Tensor:
        r"""Log-variance :math:`f \log\beta_t + (1 - f) \log\tilde\beta_t` for :math:`f \in [0, 1]`.

        The learned interpolation of Nichol & Dhariwal (eq. 15; the network outputs
        :math:`v = 2f - 1`), between the two fixed choices of Ho et al.; :math:`\tilde\beta_0`
        is replaced by :math:`\tilde\beta_1` (it is 0).
        """
        log_small = self.at(self.posterior_log_variance, t, fraction)
        log_large = self.at(self.betas.log(), t, fraction)
        return fraction * log_large + (1 - fraction) * log_small


# EDM's training noise levels (Karras et al., 2022) as log-SNR: mean 2.4, standard deviation 2.4
MID_NOISE_LOG_SNR = (2.4, 2.4)
MID_NOISE_UNIFORM_SHARE = 0.25  # the share of uniform draws beside them


class ImportanceTimesteps(nn.Module):
    r"""Loss-aware sampling of training timesteps for the variational bound (Nichol & Dhariwal, sec. 3.3).

    Keeps the last ``history`` values of each term :math:`L_t` seen in training; once every
    timestep has them, draws :math:`t` with probability

    .. math::
        p_t \propto \sqrt{\mathbb E[L_t^2]}, \quad \text{mixed with } 0.1\% \text{ of uniform},

    and weighs the term by :math:`1/(T p_t)`, so that :math:`\frac{1}{T p_t} L_t` is an unbiased
    estimate of :math:`\frac1T \sum_t L_t` (uniform draws until then). Far less variance than
    uniform draws, whose estimate is dominated by the few large terms at small :math:`t`. The
    history is in buffers, so a checkpoint carries it.
    """

    history: Tensor
    seen: Tensor

    def __init__(self, total: int, history: int = 10, uniform: float = 1e-3) -> None:
        super().__init__()
        self.uniform = uniform
        self.register_buffer("history", torch.zeros(total, history, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(total, dtype=torch.long))

    def probabilities(self) -> Tensor:
        """``(T,)`` :math:`p_t` (uniform until every timestep has a full history)."""
        total, size = self.history.shape
        if bool((self.seen < size).any()):
            return torch.full((total,), 1.0 / total, dtype=torch.float64, device=self.seen.device)
        p = self.history.square().mean(1).sqrt()
        p = p / p.sum()
        return (1 - self.uniform) * p + self.uniform / total

    def draw(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """``(n,)`` timesteps and their weights :math:`1/(T p_t)`."""
        return draw_timesteps(self.probabilities(), n, generator)

    @torch.no_grad()
    def update_(self, t: Tensor, terms: Tensor) -> None:
        """Record the terms ``(n,)`` seen at timesteps ``(n,)`` (the latest of each is kept)."""
        size = self.history.shape[1]
        for step, value in zip(t.tolist(), terms.double().tolist(), strict=True):
            self.history[step, self.seen[step] % size] = value
            self.seen[step] += 1


def draw_timesteps(p: Tensor, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    r"""``(n,)`` training timesteps drawn with probabilities ``p`` ``(T,)``, and their weights
    :math:`w_t = 1/(T p_t)`, so that :math:`\mathbb E_{t \sim p}[w_t L_t] = \frac1T \sum_t L_t`:
    a term weighted by :math:`w_t` stays an unbiased estimate of the bound's average."""
    t = torch.multinomial(p, n, replacement=True, generator=generator)
    return t, 1.0 / (len(p) * p[t])


def log_normal_timestep_probabilities(
    log_snr: Tensor,
    mean: float = MID_NOISE_LOG_SNR[0],
    std: float = MID_NOISE_LOG_SNR[1],
    uniform: float = MID_NOISE_UNIFORM_SHARE,
) -> Tensor:
    r"""``(T,)`` probabilities of training timesteps that put most draws on the middle noise
    levels, where a sample's shapes are decided (Karras et al., 2022, sec. 5: their
    :math:`\ln\sigma \sim \mathcal N(P_\text{mean}, P_\text{std}^2)` with
    :math:`\sigma^2 = 1/\text{SNR}`, i.e. :math:`\lambda = -2\ln\sigma`):

    .. math::
        p_t = \frac{u}{T} + (1 - u)\,\frac{\mathcal N(\lambda_t;\ \mu, s^2)}
        {\sum_{t'} \mathcal N(\lambda_{t'};\ \mu, s^2)},

    with :math:`\lambda_t` the schedule's log-SNR (``log_snr``), :math:`(\mu, s)` = (``mean``,
    ``std``) (EDM's :math:`P_\text{mean} = -1.2`, :math:`P_\text{std} = 1.2`: :math:`\mu = 2.4`,
    :math:`s = 2.4`) and a share :math:`u` (``uniform``) of uniform draws, so every term still
    trains and the weights :math:`1/(T p_t)` (:func:`draw_timesteps`) stay below :math:`1/u`.
    The schedule, the bound and the samplers are unchanged: only the weighting of the training
    loss over noise levels moves (Kingma & Gao, 2023, arXiv:2303.00848).
    """
    density = torch.exp(-0.5 * ((log_snr.double() - mean) / std) ** 2)
    return uniform / len(log_snr) + (1 - uniform) * density / density.sum()
