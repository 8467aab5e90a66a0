r"""The reverse process of a diffusion model: its bound, its samplers, inversion and completion.

A family hands a :class:`ReverseProcess`: the forward :class:`~genlab.samplers.schedules.NoiseSchedule`,
a denoiser (the network, read through :func:`denoised`) and a decoder. Together they define

.. math::
    p_\theta(x_{0:T}) = \mathcal N(x_{T-1}; 0, I) \prod_{t=1}^{T-1} p_\theta(x_{t-1} \mid x_t)
    \; p_\theta(x_{-1} \mid x_0), \qquad
    p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t, t), \Sigma_\theta(x_t, t)\big),

(0-indexed timesteps as in :mod:`~genlab.samplers.schedules`, so :math:`x_{-1}` is the data),
where :math:`\mu_\theta` is the forward posterior mean :math:`c^0_t \hat x_0 + c^t_t x_t` at the
denoiser's :math:`\hat x_0(x_t, t)` and :math:`\Sigma_\theta` is diagonal: fixed
(:math:`\tilde\beta_t` or :math:`\beta_t`, Ho et al.) or learned (Nichol & Dhariwal). The decoder
:math:`p_\theta(x_{-1} \mid x_0)` is a Gaussian with the step-0 mean and variance, discretised to
the data's levels for discrete data (:class:`LevelDecoder`).

What lives here, each a function of a :class:`ReverseProcess`:

- reading a network's output as :math:`\hat x_0`, :math:`\hat\epsilon` and a variance
  (:func:`denoised`; for discrete data :func:`level_posterior_mean` and
  :func:`snap_to_levels`), and classifier-free guidance of a class-conditional one
  (:func:`guide`);
- the variational bound (:func:`variational_bound`, every term; :func:`bound_terms`, each
  apart; :func:`bound_estimate`, an unbiased estimate from a few timesteps) and its terms
  (:func:`bound_term`, :func:`prior_kl`);
- ancestral sampling (:func:`ancestral_sample`, DDPM), DDIM (:func:`ddim_sample`, any
  :math:`\eta` and number of steps) and its deterministic inversion (:func:`ddim_invert`);
- completion of a partly observed example: by replacement (:func:`complete_by_replacement`,
  approximate) and by sequential Monte Carlo (:func:`complete_by_smc`, asymptotically exact).
- posterior sampling given any observation :math:`o` (a measurement through any differentiable
  :math:`f`, a class under a classifier; :class:`Likelihood`, :func:`observation_likelihood`):
  by twisted sequential Monte Carlo (:func:`posterior_by_smc`, asymptotically exact) and by
  diffusion posterior sampling (:func:`posterior_by_dps`, approximate).

Samplers work on tensors of any shape ``(N, *event_shape)`` in the model's units (the family
scales data to them); every coordinate is treated alike.

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239.
    Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021,
    arXiv:2102.09672.
    Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502.
    Lugmayr et al., "RePaint: Inpainting using Denoising Diffusion Probabilistic Models",
    CVPR 2022, arXiv:2201.09865 (replacement).
    Cardoso, Janati El Idrissi, Le Corff & Moulines, "Monte Carlo guided Diffusion for Bayesian
    linear inverse problems", ICLR 2024, arXiv:2308.07983 (the SMC completion).
    Wu, Trippe, Naesseth, Blei & Cunningham, "Practical and Asymptotically Exact Conditional
    Sampling in Diffusion Models", NeurIPS 2023, arXiv:2306.17775 (twisted SMC).
    Chung, Kim, Mccann, Klasky & Ye, "Diffusion Posterior Sampling for General Noisy Inverse
    Problems", ICLR 2023, arXiv:2209.14687 (DPS).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, get_args

import torch
from torch import Tensor
from tqdm.auto import tqdm

from genlab.config import check
from genlab.errors import DataError
from genlab.nn.likelihoods import DiscretizedGaussian
from genlab.objectives import kl_normal, kl_standard_normal
from genlab.samplers.posterior import Observation
from genlab.samplers.schedules import NoiseSchedule, Spacing, timesteps
from genlab.samplers.smc import effective_sample_size, systematic_resample

Prediction = Literal["epsilon", "x0", "v", "levels"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)
VarianceKind = Literal["fixed_small", "fixed_large", "learned_range"]
VARIANCES: tuple[str, ...] = get_args(VarianceKind)
SNAP_WINDOW = 4  # levels each side of the nearest one that snapping sums over
BOUND_ROWS = 8192  # network evaluations per pass when every term of the bound is computed
LOG_2PI = math.log(2 * math.pi)
Item = TypeVar("Item")


@dataclass(frozen=True)
class Denoised:
    r"""What the denoiser says about :math:`x_t`, all ``(N, *event_shape)`` (``log_var`` may
    broadcast).

    Attributes:
        x0: :math:`\hat x_0(x_t, t)`, the predicted data.
        eps: :math:`\hat\epsilon(x_t, t)`, the predicted noise (consistent with ``x0``:
            :math:`x_t = \sqrt{\bar\alpha_t}\hat x_0 + \sqrt{1 - \bar\alpha_t}\hat\epsilon`).
        log_var: log-variance of :math:`p_\theta(x_{t-1} \mid x_t)` (at :math:`t = 0`: of the
            decoder).
    """

    x0: Tensor
    eps: Tensor
    log_var: Tensor

    def detach_mean(self) -> Denoised:
        """The same prediction with no gradient through the mean (the hybrid loss's bound term)."""
        return Denoised(self.x0.detach(), self.eps.detach(), self.log_var)

    @staticmethod
    def cat(parts: Sequence[Denoised]) -> Denoised:
        """The predictions of consecutive row blocks as one (rows in order)."""
        return Denoised(
            torch.cat([p.x0 for p in parts]),
            torch.cat([p.eps for p in parts]),
            torch.cat([p.log_var for p in parts]),
        )


def level_posterior_mean(
    schedule: NoiseSchedule, xt: Tensor, t: Tensor, logits: Tensor, levels: int
) -> Tensor:
    r""":math:`\hat x_0` of data on :math:`L` levels: the mean of a categorical over the levels
    whose logits add the exact likelihood of each coordinate of :math:`x_t` to the network's.

    For data whose coordinates take the levels :math:`y_j = 2j/(L-1) - 1`, coordinate :math:`i`
    of :math:`x_t` depends on :math:`x_0` through :math:`x_{0,i}` alone, so the exact posterior
    of that coordinate is

    .. math::
        p(x_{0,i} = y_j \mid x_t) \propto
        \exp\Big(-\frac{(x_{t,i} - \sqrt{\bar\alpha_t}\, y_j)^2}{2(1 - \bar\alpha_t)}\Big)\,
        p(x_{0,i} = y_j \mid x_{t,-i}),

    and the network supplies the logits :math:`\ell_{ij}` of the second factor (what the rest
    of :math:`x_t` says); :math:`\hat x_{0,i} = \sum_j \operatorname{softmax}_j(\ell_{ij} -
    (x_{t,i} - \sqrt{\bar\alpha_t} y_j)^2 / 2(1 - \bar\alpha_t))\, y_j`. At low noise the
    likelihood dominates and :math:`\hat x_0` rounds :math:`x_t` to its level exactly, which a
    network predicting :math:`\epsilon` must otherwise learn as a saw-tooth of :math:`x_t` (and
    whose errors the bound weighs most). Like the continuous-time categorical denoisers of
    Dieleman et al., "Continuous diffusion for categorical data", 2022, arXiv:2211.15089.

    Arguments:
        xt: ``(N, *event_shape)``; t: ``(N,)``.
        logits: ``(N, L, *event_shape)`` the network's :math:`\ell`.
    """
    alpha_bar = schedule.at(schedule.alphas_cumprod, t, xt).unsqueeze(1)  # (N, 1, 1, ...)
    grid = torch.linspace(-1, 1, levels, device=xt.device, dtype=xt.dtype)
    grid = grid.view(1, levels, *(1,) * (xt.dim() - 1))  # (1, L, 1, ...)
    log_likelihood = -(xt.unsqueeze(1) - alpha_bar.sqrt() * grid).square() / (2 * (1 - alpha_bar))
    return (torch.softmax(logits + log_likelihood, 1) * grid).sum(1)


def snap_to_levels(
    schedule: NoiseSchedule, xt: Tensor, t: Tensor, x0: Tensor, log_tau2: Tensor, levels: int
) -> Tensor:
    r""":math:`\hat x_0` of data on :math:`L` levels: the posterior mean of each coordinate
    over the levels, given :math:`x_t` and a Gaussian belief :math:`\mathcal N(\hat x_0,
    \tau^2)` about it from the network.

    Coordinate :math:`i` of :math:`x_t` says :math:`x_{t,i}/\sqrt{\bar\alpha_t} \sim
    \mathcal N(x_{0,i}, e^{-\lambda_t})`, :math:`\lambda_t = \log(\bar\alpha_t / (1 -
    \bar\alpha_t))`; with the network's belief (its :math:`\hat x_0` and a predicted
    :math:`\log\tau^2`, both read from the rest of :math:`x_t` as well) the posterior is
    Gaussian,

    .. math::
        m = g\, \frac{x_t}{\sqrt{\bar\alpha_t}} + (1 - g)\, \hat x_0, \qquad
        s^2 = g\, e^{-\lambda_t}, \qquad
        g = \operatorname{sigmoid}(\lambda_t + \log\tau^2),

    and restricted to the levels :math:`y_j = 2j/(L-1) - 1` it is
    :math:`p(y_j) \propto \exp(-(y_j - m)^2 / 2s^2)`. The result is

    .. math::
        \hat x_0' = (1 - w)\, \sum_j p(y_j)\, y_j + w\, m, \qquad
        w = \operatorname{clip}\big(2s/\Delta - 1, 0, 1\big),

    with :math:`\Delta = 2/(L - 1)` the spacing: the sum over the :data:`SNAP_WINDOW` levels
    each side of the nearest one where :math:`s \le \Delta/2` (what lies further weighs
    less than :math:`e^{-24}`), the continuous mean :math:`m` where :math:`s \ge \Delta`
    (the levels' mean then differs from it by :math:`O(e^{-2\pi^2 s^2/\Delta^2})`, under
    :math:`10^{-8}`, away from the ends of the range), a linear blend between. At low noise
    :math:`\hat x_0'` is the level :math:`x_t` points to, exactly, whatever the network
    says: the terms of the bound there, which a network predicting :math:`\epsilon` pays
    dearly for (it must learn the saw-tooth of rounding), vanish; at high noise it is the
    network's :math:`\hat x_0`. :func:`level_posterior_mean` is the same idea with a logit
    per level instead of :math:`(\hat x_0, \tau^2)`, :math:`L` times the outputs.

    Arguments:
        xt: ``(N, *event_shape)``; t: ``(N,)``.
        x0, log_tau2: ``(N, *event_shape)`` the network's :math:`\hat x_0` and
            :math:`\log\tau^2`.
        levels: :math:`L \ge 2`.
    """
    log_snr = schedule.at(schedule.log_snr, t, xt)
    alpha_bar = schedule.at(schedule.alphas_cumprod, t, xt)
    g = torch.sigmoid(log_snr + log_tau2)
    mean = g * xt / alpha_bar.sqrt() + (1 - g) * x0
    std = (g * torch.exp(-log_snr)).sqrt()
    spacing = 2 / (levels - 1)
    width = min(2 * SNAP_WINDOW + 1, levels)
    nearest = torch.round((mean.detach() + 1) / spacing)
    first = (nearest - SNAP_WINDOW).clamp(0, levels - width)
    offsets = torch.arange(width, device=xt.device, dtype=xt.dtype)
    grid = (first + offsets.view(-1, *(1,) * xt.dim())) * spacing - 1  # (width, N, ...)
    logits = -((grid - mean) / std).square() / 2
    # a softmax over the leading dim, written out (twice as fast here), shifted by the largest
    # logit, the in-range level nearest the mean's (any constant shift gives the same softmax)
    with torch.no_grad():
        top = -((nearest.clamp(0, levels - 1) * spacing - 1 - mean) / std).square() / 2
    weights = torch.exp(logits - top)
    snapped = (weights * grid).sum(0) / weights.sum(0)
    blend = (2 * std / spacing - 1).clamp(0, 1)
    return snapped + blend * (mean - snapped)


def denoised(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: Tensor,
    output: Tensor,
    prediction: Prediction,
    variance: VarianceKind,
    variance_output: Tensor | None = None,
    log_tau2: Tensor | None = None,
    levels: int | None = None,
) -> Denoised:
    r"""Read a network's ``output`` at :math:`(x_t, t)` as :math:`\hat x_0`, :math:`\hat\epsilon`
    and the reverse step's log-variance.

    ``prediction``: the output is :math:`\hat\epsilon` (``"epsilon"``), :math:`\hat x_0`
    (``"x0"``), the velocity :math:`\hat v` (``"v"``), or the logits ``(N, L, *event_shape)``
    of :func:`level_posterior_mean` (``"levels"``, data on :math:`L` levels); the others follow
    from :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}\epsilon`. ``variance``:
    ``"fixed_small"`` (:math:`\tilde\beta_t`, its value at :math:`t = 1` for :math:`t = 0`),
    ``"fixed_large"`` (:math:`\beta_t`) or ``"learned_range"``: ``variance_output`` :math:`v`
    gives :math:`\exp(f \log\beta_t + (1 - f)\log\tilde\beta_t)`, :math:`f = (v + 1)/2`
    (Nichol & Dhariwal, eq. 15; not clamped, as theirs). Given ``log_tau2`` and ``levels``
    :math:`L` (data on :math:`L` levels, another prediction than ``"levels"``), the
    :math:`\hat x_0` so read is snapped to the levels (:func:`snap_to_levels`) and
    :math:`\hat\epsilon` follows it.

    Arguments:
        xt: ``(N, *event_shape)`` :math:`x_t`.
        t: ``(N,)`` long timesteps.
        output, variance_output, log_tau2: ``(N, *event_shape)`` network outputs (``output``
            is ``(N, L, *event_shape)`` for ``"levels"``).
    """
    if prediction == "epsilon":
        eps, x0 = output, schedule.x0_from_epsilon(xt, t, output)
    elif prediction == "x0":
        x0, eps = output, schedule.epsilon_from_x0(xt, t, output)
    elif prediction == "v":
        x0 = schedule.x0_from_v(xt, t, output)
        eps = schedule.epsilon_from_x0(xt, t, x0)
    else:
        x0 = level_posterior_mean(schedule, xt, t, output, output.shape[1])
        eps = schedule.epsilon_from_x0(xt, t, x0)
    if log_tau2 is not None:
        check(levels is not None and prediction != "levels", "snapping needs levels, not logits")
        x0 = snap_to_levels(schedule, xt, t, x0, log_tau2, levels)  # type: ignore[arg-type]
        eps = schedule.epsilon_from_x0(xt, t, x0)
    if variance == "learned_range":
        check(variance_output is not None, "learned_range needs the network's variance output")
        log_var = schedule.learned_log_variance((variance_output + 1) / 2, t)  # type: ignore[operator]
    elif variance == "fixed_large":
        log_var = schedule.at(schedule.betas.log(), t, xt)
    else:
        log_var = schedule.at(schedule.posterior_log_variance, t, xt)
    return Denoised(x0, eps, log_var)


def guide(conditional: Denoised, unconditional: Denoised, weight: float) -> Denoised:
    r"""Classifier-free guidance: the conditional prediction pushed away from the unconditional one.

    .. math::
        \tilde\epsilon = (1 + w)\, \hat\epsilon(x_t, y) - w\, \hat\epsilon(x_t, \varnothing),
        \qquad
        \tilde x_0 = (1 + w)\, \hat x_0(x_t, y) - w\, \hat x_0(x_t, \varnothing),

    Ho & Salimans's convention (:math:`w = 0`: the conditional model; :math:`w > 0` sharpens
    toward :math:`p(x_t \mid y)\, p(y \mid x_t)^w`). The combination is taken in
    :math:`\epsilon`, where the two scores add; since :math:`\hat x_0 = (x_t - \sqrt{1 -
    \bar\alpha_t}\, \hat\epsilon)/\sqrt{\bar\alpha_t}` is affine in :math:`\hat\epsilon` with
    the same :math:`x_t` for both and the weights sum to 1, the same combination of the
    :math:`\hat x_0` (and of :math:`v`) is the same prediction, so it holds whatever the
    network predicts (for ``"levels"``: of the posterior means :math:`\hat x_0`, not of their
    logits). The variance is the conditional one. The guided process has no normalised
    density of its own: bounds and likelihoods are the unguided model's.

    Arguments:
        conditional: the denoiser given the labels :math:`y`.
        unconditional: the denoiser at the same :math:`(x_t, t)` given the null token
            :math:`\varnothing`.
        weight: :math:`w \ge 0`.

    References:
        Ho & Salimans, "Classifier-Free Diffusion Guidance", 2021, arXiv:2207.12598, eq. 6.
    """
    w = weight
    return Denoised(
        (1 + w) * conditional.x0 - w * unconditional.x0,
        (1 + w) * conditional.eps - w * unconditional.eps,
        conditional.log_var,
    )


class Decoder(Protocol):
    r""":math:`p_\theta(x_{-1} \mid x_0)`, factorised over coordinates, from the step-0 mean and log-variance."""

    def coordinate_log_prob(self, mean: Tensor, log_var: Tensor, x: Tensor) -> Tensor:
        """``(N, *event_shape)`` log-probability (or density) of each coordinate of ``x``."""
        ...

    def sample(self, mean: Tensor, log_var: Tensor, generator: torch.Generator | None) -> Tensor:
        """``(N, *event_shape)`` one draw of the data."""
        ...


class GaussianDecoder:
    r"""Continuous data: :math:`\mathcal N(x; \mu, \sigma^2)` per coordinate, a density."""

    def coordinate_log_prob(self, mean: Tensor, log_var: Tensor, x: Tensor) -> Tensor:
        r""":math:`-\frac12\big(\log 2\pi + \log\sigma^2 + (x - \mu)^2/\sigma^2\big)`."""
        return -0.5 * (LOG_2PI + log_var + (x - mean).square() * torch.exp(-log_var))

    def sample(self, mean: Tensor, log_var: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * log_var) * noise


class LevelDecoder:
    r"""Data of :math:`L` levels at :math:`y_j = 2j/(L-1) - 1`: the
    :class:`~genlab.nn.likelihoods.DiscretizedGaussian`, a probability per coordinate.

    Values are read as the level of their bin (:meth:`level`), draws are level positions.
    """

    def __init__(self, levels: int) -> None:
        self.levels = levels

    def level(self, x: Tensor) -> Tensor:
        """The index :math:`j` of the bin of each value on the :math:`[-1, 1]` scale."""
        return torch.round((x + 1) * (self.levels - 1) / 2).clamp(0, self.levels - 1)

    def position(self, level: Tensor) -> Tensor:
        """:math:`y_j = 2j/(L-1) - 1`."""
        return 2 * level / (self.levels - 1) - 1

    def distribution(self, mean: Tensor, log_var: Tensor) -> DiscretizedGaussian:
        return DiscretizedGaussian(mean, 0.5 * log_var, self.levels)

    def coordinate_log_prob(self, mean: Tensor, log_var: Tensor, x: Tensor) -> Tensor:
        return self.distribution(mean, log_var).log_prob(self.level(x))

    def sample(self, mean: Tensor, log_var: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.position(self.distribution(mean, log_var).sample_with(generator))


@dataclass(frozen=True)
class ReverseProcess:
    """What the samplers need of a diffusion model (module docstring).

    Attributes:
        schedule: the forward process.
        denoise: ``(x_t (N, *event_shape), t (N,) long) -> Denoised`` (the averaged network,
            read by :func:`denoised`). Samplers that evaluate several copies of a batch at
            once stack them copy-major (row :math:`jN + i` is example :math:`i`; the bound's
            timesteps), which a class-conditional model's denoiser follows with its labels;
            :func:`complete_by_smc` interleaves its particles (row :math:`iK + j`).
        decoder: :math:`p_\\theta(x_{-1} \\mid x_0)`.
    """

    schedule: NoiseSchedule
    denoise: Callable[[Tensor, Tensor], Denoised]
    decoder: Decoder

    @property
    def total(self) -> int:
        return self.schedule.total

    def at(self, x: Tensor, step: int) -> Denoised:
        """The denoiser at one timestep for the whole batch."""
        return self.denoise(x, torch.full((len(x),), step, device=x.device, dtype=torch.long))

    def transition(self, xt: Tensor, t: Tensor, prediction: Denoised) -> tuple[Tensor, Tensor]:
        r"""Mean and log-variance of :math:`p_\theta(x_{t-1} \mid x_t)`: :math:`\mu_\theta =
        c^0_t \hat x_0 + c^t_t x_t` (at :math:`t = 0` just :math:`\hat x_0`)."""
        mean, _ = self.schedule.q_posterior(prediction.x0, xt, t)
        return mean, prediction.log_var.expand_as(mean)


def _progress(
    iterable: Iterable[Item], progress: bool | None, what: str, total: int
) -> Iterator[Item]:
    """A progress bar over the steps; ``progress=None`` shows it only on a terminal."""
    return iter(
        tqdm(
            iterable,
            total=total,
            desc=what,
            disable=None if progress is None else not progress,
            leave=False,
            unit="step",
            dynamic_ncols=True,
        )
    )


def _noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


# ---------------------------------------------------------------------------------- the bound


def prior_kl(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    r"""``(N,)`` :math:`\mathrm{KL}(q(x_{T-1} \mid x_0) \,\|\, \mathcal N(0, I))`, summed over coordinates.

    .. math::
        \tfrac12 \sum_d \big(\bar\alpha x_{0,d}^2 + (1 - \bar\alpha) - 1 - \log(1 - \bar\alpha)\big),
        \qquad \bar\alpha = \bar\alpha_{T-1}.
    """
    last = torch.full((len(x0),), schedule.total - 1, device=x0.device, dtype=torch.long)
    alpha_bar = schedule.at(schedule.alphas_cumprod, last, x0)
    log_scale = 0.5 * torch.log1p(-alpha_bar).expand_as(x0)
    return kl_standard_normal(alpha_bar.sqrt() * x0, log_scale).flatten(1).sum(1)


def bound_term(
    process: ReverseProcess, x0: Tensor, xt: Tensor, t: Tensor, prediction: Denoised
) -> Tensor:
    r"""``(N,)`` the term of step ``t`` of the bound, in nats, summed over coordinates.

    .. math::
        L_t = \begin{cases}
        \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\big) & t \ge 1
        \\ -\log p_\theta(x_0^{\text{data}} \mid x_0) & t = 0 \end{cases}

    (two diagonal Gaussians in closed form, :func:`~genlab.objectives.kl_normal`; the decoder's
    log-probability), for :math:`x_t` drawn from :math:`q(x_t \mid x_0)`.

    Arguments:
        x0: ``(N, *event_shape)`` data in model units.
        xt: ``(N, *event_shape)`` a draw of :math:`q(x_t \mid x_0)`.
        t: ``(N,)`` long timesteps.
        prediction: the denoiser at ``(xt, t)``.
    """
    schedule = process.schedule
    mean, log_var = process.transition(xt, t, prediction)
    first = (t == 0).view(-1, *(1,) * (x0.dim() - 1))
    true_mean, true_var = schedule.q_posterior(x0, xt, t)
    # at t = 0 the posterior is a point mass (variance 0): give it 1 so that the unused KL stays
    # finite (a NaN there would poison the gradient through torch.where)
    true_log_scale = 0.5 * torch.log(torch.where(first, torch.ones_like(true_var), true_var))
    kl = kl_normal(true_mean, true_log_scale.expand_as(x0), mean, 0.5 * log_var)
    nll = -process.decoder.coordinate_log_prob(mean, log_var, x0)
    return torch.where(first, nll, kl).flatten(1).sum(1)


def _term_at(process: ReverseProcess, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    xt = process.schedule.q_sample(x0, t, noise)
    return bound_term(process, x0, xt, t, process.denoise(xt, t))


def variational_bound(
    process: ReverseProcess,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    shared_noise: bool = False,
    progress: bool | None = None,
) -> Tensor:
    r"""``(N,)`` the variational bound on :math:`-\log p_\theta(x_0)` with every term, in nats.

    .. math::
        -\log p_\theta(x_0) \le \mathrm{KL}(q(x_{T-1} \mid x_0) \,\|\, \mathcal N(0, I))
        + \sum_{t=0}^{T-1} L_t(x_0, x_t), \qquad x_t \sim q(x_t \mid x_0)

    (Sohl-Dickstein et al., 2015; Ho et al., 2020, eq. 5; :func:`bound_term`): one draw of
    :math:`x_t` per term (:func:`bound_terms`, whose arguments these are), so the value is an
    unbiased estimate of the bound (whose expectation lies above :math:`-\log p_\theta`).
    """
    terms = bound_terms(
        process, x0, generator=generator, shared_noise=shared_noise, progress=progress
    )
    return prior_kl(process.schedule, x0) + terms.sum(0)


def bound_terms(
    process: ReverseProcess,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    shared_noise: bool = False,
    progress: bool | None = None,
) -> Tensor:
    r"""``(T, N)`` every term :math:`L_t(x_0, x_t)` of the bound (:func:`bound_term`), in nats,
    one draw of :math:`x_t \sim q(x_t \mid x_0)` each.

    The :math:`T N` network evaluations run in passes of about :data:`BOUND_ROWS`, many
    timesteps per pass.

    Arguments:
        x0: ``(N, *event_shape)`` data in model units.
        generator: draws the noise of each term.
        shared_noise: one noise vector per timestep shared by the batch (common random
            numbers: each example's value then depends on the example alone, not its batch).
        progress: a progress bar over the passes (``None``: on a terminal).
    """
    n, total, event = len(x0), process.total, x0.shape[1:]
    per_pass = max(1, BOUND_ROWS // n)
    shared = None
    if shared_noise:  # drawn at once: the same numbers whatever the batch size and passes
        shared = torch.randn(
            total, 1, *event, generator=generator, device=x0.device, dtype=x0.dtype
        )
    passes = range(0, total, per_pass)
    out = []
    for start in _progress(passes, progress, "bound", len(passes)):
        steps = torch.arange(start, min(start + per_pass, total), device=x0.device)
        m = len(steps)
        if shared is None:
            noise = torch.randn(
                m, n, *event, generator=generator, device=x0.device, dtype=x0.dtype
            )
        else:
            noise = shared[start : start + m]
        noise = noise.expand(m, n, *event).reshape(m * n, *event)
        rows = x0.repeat(m, *(1,) * (x0.dim() - 1))  # (m * n, ...): timestep-major
        out.append(_term_at(process, rows, steps.repeat_interleave(n), noise).view(m, n))
    return torch.cat(out)


def stratified_timesteps(
    total: int, n: int, count: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    r"""``(n, count)`` timesteps, column :math:`j` uniform on :math:`[jT/m, (j+1)T/m)` (floored).

    Stratified sampling: :math:`\frac Tm \sum_j L_{t_j}` is an unbiased estimate of
    :math:`\sum_t L_t`, with less variance than :math:`m` independent uniform draws.
    """
    u = torch.rand(n, count, generator=generator, device=device, dtype=torch.float64)
    strata = torch.arange(count, device=device, dtype=torch.float64)
    return ((strata + u) * total / count).floor().long().clamp(max=total - 1)


def bound_estimate(
    process: ReverseProcess,
    x0: Tensor,
    count: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``(N,)`` an unbiased estimate of :func:`variational_bound` from ``count`` timesteps per example.

    .. math::
        \mathrm{KL}(q(x_{T-1} \mid x_0) \,\|\, \mathcal N(0, I)) + \frac{T}{m}\sum_{j=1}^m
        L_{t_j}(x_0, x_{t_j}),

    :math:`t_j` stratified (:func:`stratified_timesteps`): cheaper than every term, noisier,
    and the same expectation. For validation (model selection), never reported as the bound.
    """
    n, total = len(x0), process.total
    t = stratified_timesteps(total, n, count, generator, x0.device).T.reshape(-1)  # (count * n,)
    rows = x0.repeat(count, *(1,) * (x0.dim() - 1))
    noise = _noise(rows, generator)
    terms = _term_at(process, rows, t, noise).view(count, n)
    return prior_kl(process.schedule, x0) + terms.sum(0) * (total / count)


# ---------------------------------------------------------------------------------- sampling


def ancestral_sample(
    process: ReverseProcess,
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
    keep: Sequence[int] = (),
    progress: bool | None = None,
) -> tuple[Tensor, dict[int, Tensor]]:
    r"""DDPM: :math:`x_{t-1} \sim p_\theta(x_{t-1} \mid x_t)` from :math:`t = T-1` to the data.

    Arguments:
        x: ``(N, *event_shape)`` the start :math:`x_{T-1}` (a draw of :math:`\mathcal N(0, I)`).
        keep: timesteps whose state :math:`x_t` to return too (the denoising chain).

    Returns:
        ``(N, *event_shape)`` a draw of the decoder (the data), and ``{t: x_t}`` for ``keep``.
    """
    kept = {}
    for step in _progress(range(process.total - 1, -1, -1), progress, "ddpm", process.total):
        if step in keep:
            kept[step] = x
        prediction = process.at(x, step)
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        mean, log_var = process.transition(x, t, prediction)
        if step == 0:
            return process.decoder.sample(mean, log_var, generator), kept
        x = mean + torch.exp(0.5 * log_var) * _noise(x, generator)
    raise AssertionError("unreachable")


def ddim_step(
    schedule: NoiseSchedule,
    x: Tensor,
    prediction: Denoised,
    t: int,
    s: int,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    r"""One DDIM update from timestep ``t`` to an earlier ``s`` (``-1``: the data).

    .. math::
        x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\hat\epsilon
        + \sigma z, \qquad
        \sigma = \eta \sqrt{\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t}}
        \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_s}}

    (Song et al., 2021, eq. 12 and 16; :math:`\bar\alpha_{-1} = 1`). :math:`\eta = 0` is
    deterministic (an ODE solver); :math:`\eta = 1` with :math:`s = t - 1` has the variance
    :math:`\tilde\beta_t` of DDPM's posterior.

    Arguments:
        x: ``(N, *event_shape)`` :math:`x_t`.
        prediction: the denoiser at ``(x, t)``.
        noise: :math:`z`, ``x``'s shape (needed when :math:`\eta > 0`).
    """
    like = x.new_zeros(1)
    alpha_t = schedule.alpha_bar(torch.tensor([t], device=x.device), like)
    alpha_s = schedule.alpha_bar(torch.tensor([s], device=x.device), like)
    if eta == 0:  # also the inversion's steps up from the data, where 1 - alpha_t = 0
        return alpha_s.sqrt() * prediction.x0 + (1 - alpha_s).sqrt() * prediction.eps
    check(noise is not None, "ddim_step with eta > 0 needs noise")
    sigma = eta * ((1 - alpha_s) / (1 - alpha_t) * (1 - alpha_t / alpha_s)).sqrt()
    out = alpha_s.sqrt() * prediction.x0 + (1 - alpha_s - sigma**2).sqrt() * prediction.eps
    return out + sigma * noise  # type: ignore[operator]


def ddim_sample(
    process: ReverseProcess,
    x: Tensor,
    steps: int,
    *,
    spacing: Spacing = "trailing",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Tensor:
    r"""DDIM from :math:`x_{t_0}` through the timesteps :math:`t_0 > t_1 > \dots` of
    :func:`~genlab.samplers.schedules.timesteps` to the data (:func:`ddim_step` at each).

    Returns the last step's :math:`\hat x_0` (the prediction, not a decoder draw), ``x``'s shape.
    """
    check(eta >= 0, f"eta must be >= 0, got {eta}")
    visit = timesteps(process.total, steps, spacing).tolist()
    for i in _progress(range(len(visit)), progress, "ddim", len(visit)):
        t = visit[i]
        s = visit[i + 1] if i + 1 < len(visit) else -1
        noise = _noise(x, generator) if eta > 0 else None
        x = ddim_step(process.schedule, x, process.at(x, t), t, s, eta, noise)
    return x


def ddim_invert(
    process: ReverseProcess,
    x0: Tensor,
    steps: int,
    *,
    spacing: Spacing = "trailing",
    iterations: int = 0,
    progress: bool | None = None,
) -> Tensor:
    r"""Deterministic DDIM run backwards: data ``x0`` to :math:`x_{t_0}`, ``(N, *event_shape)``.

    The timesteps of :func:`ddim_sample` in reverse order, from the data (:math:`s = -1`) up.
    Sampling goes from :math:`t` to :math:`s < t` by
    :math:`x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s}\,\hat\epsilon` with
    :math:`\hat\epsilon = \hat\epsilon(x_t, t)` and :math:`\hat x_0 = (x_t - \sqrt{1 -
    \bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}`; solved for :math:`x_t`,

    .. math::
        x_t = \sqrt{\bar\alpha_t}\,\frac{x_s - \sqrt{1 - \bar\alpha_s}\,\hat\epsilon}
        {\sqrt{\bar\alpha_s}} + \sqrt{1 - \bar\alpha_t}\,\hat\epsilon .

    The unknown :math:`\hat\epsilon(x_t, t)` is first replaced by :math:`\hat\epsilon(x_s, t)`
    (the current state at the target timestep): the explicit-Euler inversion of the
    probability-flow ODE (Song et al., 2021, sec. 4.3; Dhariwal & Nichol, 2021, appendix F).
    ``iterations`` fixed-point steps then re-evaluate :math:`\hat\epsilon` at the new
    :math:`x_t` (Pan et al., 2023, "AIDI"): at their fixed point the sampling step returns
    :math:`x_s` exactly, so decoding returns the input; each costs one more network call.
    """
    schedule = process.schedule
    visit = timesteps(process.total, steps, spacing).flip(0).tolist()
    like = x0.new_zeros(1)
    x, s = x0, -1
    for t in _progress(visit, progress, "ddim inversion", len(visit)):
        alpha_s = schedule.alpha_bar(torch.tensor([s], device=x.device), like)
        alpha_t = schedule.alpha_bar(torch.tensor([t], device=x.device), like)
        guess = x
        for _ in range(iterations + 1):
            eps = process.at(guess, t).eps
            data = (x - (1 - alpha_s).sqrt() * eps) / alpha_s.sqrt()  # x_0 read at level s
            guess = alpha_t.sqrt() * data + (1 - alpha_t).sqrt() * eps
        x, s = guess, t
    return x


# ---------------------------------------------------------------------------------- completion


def complete_by_replacement(
    process: ReverseProcess,
    y: Tensor,
    observed: Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Tensor:
    r"""``(N, *event_shape)`` completions by replacement (approximate; RePaint without resampling).

    Ancestral sampling in which, before each step, the observed coordinates of :math:`x_t` are
    replaced by a fresh draw of the forward process from the observed values,
    :math:`x_t^o \leftarrow \sqrt{\bar\alpha_t}\, y + \sqrt{1 - \bar\alpha_t}\, \epsilon`, and the
    decoder's draw of the unobserved coordinates is kept next to :math:`y`.

    Not the model's conditional: the replaced coordinates are drawn from the forward process
    given :math:`y` alone, ignoring what the unobserved coordinates already say, so the
    unobserved ones are never weighed by how well they agree with :math:`y` (biased, e.g. in
    the weights of modes; ``tests/test_diffusion_samplers.py`` shows it on a 2-D mixture).

    Arguments:
        y: ``(N, *event_shape)`` examples; only the observed coordinates are read.
        observed: bool, ``event_shape``: True marks observed.
    """
    schedule = process.schedule
    mask = observed.unsqueeze(0)
    x = _noise(y, generator)
    for step in _progress(range(process.total - 1, -1, -1), progress, "replace", process.total):
        t = torch.full((len(y),), step, device=y.device, dtype=torch.long)
        x = torch.where(mask, schedule.q_sample(y, t, _noise(y, generator)), x)
        mean, log_var = process.transition(x, t, process.denoise(x, t))
        if step == 0:
            return torch.where(mask, y, process.decoder.sample(mean, log_var, generator))
        x = mean + torch.exp(0.5 * log_var) * _noise(x, generator)
    raise AssertionError("unreachable")


def _log_normal(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    r"""Elementwise :math:`\log \mathcal N(x; \mu, \sigma^2)`."""
    return -0.5 * (LOG_2PI + var.log() + (x - mean).square() / var)


def x0_variance(alpha_bar: Tensor, data_variance: float) -> Tensor:
    r""":math:`\tau_t^2 = v (1 - \bar\alpha_t) / (v \bar\alpha_t + 1 - \bar\alpha_t)`: the
    variance of :math:`x_0` given :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}
    \epsilon` per coordinate if the data were Gaussian with variance :math:`v`: how far the
    denoiser's :math:`\hat x_0` may be from the data (the twisting functions' width)."""
    return data_variance * (1 - alpha_bar) / (data_variance * alpha_bar + 1 - alpha_bar)


def _resample_degenerate(
    log_w: Tensor,
    states: Sequence[Tensor],
    ess_fraction: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, list[Tensor]]:
    r"""Systematic resampling of the filters whose effective sample size is below
    ``ess_fraction`` :math:`K`.

    A resampled filter's particles all take the log mean weight
    :math:`\log \frac1K \sum_k w_k`: equal weights, and the running product of the mean
    weights stays in them, so :math:`\log \frac1K \sum_k w_k` at the end is the log of the
    filter's unbiased estimate :math:`\hat Z` of its target's normaliser (Doucet & Johansen,
    2009).

    Arguments:
        log_w: ``(F, K)`` float64 log-weights.
        states: tensors ``(F * K, ...)`` (particle :math:`j` of filter :math:`i` at row
            :math:`iK + j`) or ``(F, K)``, gathered alike.
    """
    f, k = log_w.shape
    resample = effective_sample_size(log_w) < ess_fraction * k
    if not bool(resample.any()):
        return log_w, list(states)
    keep = torch.arange(k, device=log_w.device).expand(f, k)
    index = torch.where(resample[:, None], systematic_resample(log_w, generator), keep)
    rows = torch.arange(f, device=log_w.device)[:, None]

    def gather(v: Tensor) -> Tensor:
        grouped = v if v.shape[:2] == (f, k) else v.reshape(f, k, *v.shape[1:])  # (F, K, ...)
        return grouped[rows, index].reshape(v.shape)

    gathered = [gather(v) for v in states]
    mean = (torch.logsumexp(log_w, 1, keepdim=True) - math.log(k)).expand(f, k)
    return torch.where(resample[:, None], mean, log_w), gathered


def draw_particle(particles: Tensor, log_w: Tensor, generator: torch.Generator | None) -> Tensor:
    """``(F, *event_shape)`` one particle of each filter, drawn with probability proportional to
    its final weight (a filter whose weights are all ``-inf`` or NaN draws uniformly).

    Arguments:
        particles: ``(F, K, *event_shape)``.
        log_w: ``(F, K)`` log-weights.
    """
    log_w = torch.nan_to_num(log_w, nan=-math.inf)
    log_w = torch.where(torch.isinf(log_w).all(1, keepdim=True), torch.zeros_like(log_w), log_w)
    pick = torch.multinomial(torch.softmax(log_w, 1), 1, generator=generator).squeeze(1)
    return particles[torch.arange(len(particles), device=particles.device), pick]


def complete_by_smc(
    process: ReverseProcess,
    y: Tensor,
    observed: Tensor,
    *,
    particles: int = 16,
    data_variance: float = 1.0,
    ess_fraction: float = 0.5,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Tensor:
    r"""``(N, *event_shape)`` completions by twisted sequential Monte Carlo (asymptotically exact).

    Each example runs its own particle filter of :math:`K` particles whose final target is the
    model's own conditional :math:`p_\theta(x^u \mid x^o = y)`. With :math:`L = T - 1`, the
    filter's targets are :math:`\gamma_t(x_{t:L}) = p_\theta(x_{t:L})\, g_t(x_t)` for twisting
    functions that guess how well :math:`x_t` will end at :math:`y` (Wu et al., 2023): the
    denoiser's prediction of the observed coordinates,

    .. math::
        g_t(x_t) = \prod_{i \in o} \mathcal N\big(y_i;\ \hat x_0(x_t, t)_i,\ \tau_t^2\big),
        \qquad \tau_t^2 = \frac{v (1 - \bar\alpha_t)}{v \bar\alpha_t + 1 - \bar\alpha_t},

    :math:`\tau_t^2` the variance of :math:`x_{0,i}` given :math:`x_{t,i}` if the data were
    Gaussian with variance :math:`v` (``data_variance``; 1 suits data scaled to unit variance,
    and discrete data on :math:`[-1, 1]` has less). Knowing the other coordinates can only
    shrink it, so the twist errs on the wide side: on the tests' Gaussian data, twists 3 times
    too narrow biased the completions of 16 particles by half a standard deviation at
    :math:`T = 500`, while these left them unbiased.

    Proposals need no gradient (Cardoso et al., 2024, "MCGdiff"): the model's step for the
    unobserved coordinates and, for the observed ones, its product with the forward marginal
    :math:`h_{t-1}(x_{t-1}) = \prod_{i \in o} \mathcal N(x_{t-1,i}; \sqrt{\bar\alpha_{t-1}}\,
    y_i, 1 - \bar\alpha_{t-1})`, a Gaussian with variance :math:`v = (1/\sigma^2 + 1/s^2)^{-1}`,
    :math:`s^2 = 1 - \bar\alpha_{t-1}`, and mean :math:`v(\mu/\sigma^2 + \sqrt{\bar
    \alpha_{t-1}}\, y/s^2)`. The incremental weights are :math:`\gamma_{t-1} / (\gamma_t\, r)`:

    .. math::
        w_L = \frac{g_L(x_L)}{h_L(x_L)}, \qquad
        w_{t-1} = \frac{g_{t-1}(x_{t-1})\, Z_{t-1}(x_t)}{g_t(x_t)\, h_{t-1}(x_{t-1})}, \qquad
        Z_{t-1}(x_t) = \prod_{i \in o} \mathcal N\big(\sqrt{\bar\alpha_{t-1}}\, y_i;\
        \mu_i, \sigma_i^2 + s^2\big),

    and the last step draws the unobserved data from the decoder and weighs by
    :math:`p_\theta(x^o = y \mid x_0) / g_0(x_0)`, which makes the final target exactly
    :math:`p_\theta(x_{0:L}, x^u \mid x^o = y)` whatever :math:`g` and :math:`h`: they only
    decide how well :math:`K` particles do. Particles are resampled (systematically) when the
    effective sample size falls below ``ess_fraction`` :math:`K`; one particle per filter is
    returned, drawn by its final weight. As :math:`K \to \infty` its law converges to the
    model's conditional (SMC consistency; Del Moral, 2004); for finite :math:`K` it is biased by
    :math:`O(1/K)`. Cost: :math:`K` ancestral samples.

    Arguments:
        y: ``(N, *event_shape)`` examples; only the observed coordinates are read.
        observed: bool, ``event_shape``: True marks observed.
        particles: :math:`K` per example.
        data_variance: :math:`v` of the twisting functions.
        ess_fraction: resample when the ESS falls below this fraction of :math:`K`.
    """
    check(particles >= 1, f"particles must be >= 1, got {particles}")
    check(data_variance > 0, f"data_variance must be positive, got {data_variance}")
    check(0 < ess_fraction <= 1, f"ess_fraction must be in (0, 1], got {ess_fraction}")
    schedule, k, n = process.schedule, particles, len(y)
    event = y.shape[1:]
    mask = observed.unsqueeze(0)  # (1, *event)
    ys = y.repeat_interleave(k, 0)  # (n * k, *event): particle j of filter i is row i * k + j

    def alpha_bar(step: int) -> Tensor:
        return schedule.alpha_bar(torch.tensor([step], device=y.device), ys)

    def observed_sum(values: Tensor) -> Tensor:
        return (values * mask).flatten(1).sum(1).view(n, k).double()

    def forward_marginal(step: int) -> tuple[Tensor, Tensor]:
        """Mean and variance of :math:`h_t`, for every coordinate."""
        a = alpha_bar(step)
        return a.sqrt() * ys, (1 - a).expand_as(ys)

    last = process.total - 1
    mean_h, var_h = forward_marginal(last)  # start from N(0, I) h_L
    x = torch.where(
        mask,
        mean_h / (1 + var_h) + (var_h / (1 + var_h)).sqrt() * _noise(ys, generator),
        _noise(ys, generator),
    )
    log_w = torch.zeros(n, k, device=y.device, dtype=torch.float64)
    pending = torch.zeros_like(log_w)  # log Z_{t-1}(x_t) - log g_t(x_t) of the last transition
    for step in _progress(range(last, -1, -1), progress, "smc", process.total):
        t = torch.full((n * k,), step, device=y.device, dtype=torch.long)
        prediction = process.denoise(x, t)
        mean, log_var = process.transition(x, t, prediction)
        mean_h, var_h = forward_marginal(step)
        twist_var = x0_variance(1 - var_h, data_variance)
        log_g = observed_sum(_log_normal(ys, prediction.x0, twist_var))
        log_w = log_w + pending + log_g - observed_sum(_log_normal(x, mean_h, var_h))
        if step == 0:
            log_p = observed_sum(process.decoder.coordinate_log_prob(mean, log_var, ys))
            log_w = log_w + log_p - log_g
            x = torch.where(mask, ys, process.decoder.sample(mean, log_var, generator))
            break
        log_w, (x, mean, log_var, log_g) = _resample_degenerate(
            log_w, (x, mean, log_var, log_g), ess_fraction, generator
        )
        var = log_var.exp()
        mean_next, var_next = forward_marginal(step - 1)
        pending = observed_sum(_log_normal(mean_next, mean, var + var_next)) - log_g
        var_proposal = 1 / (1 / var + 1 / var_next)
        mean_proposal = var_proposal * (mean / var + mean_next / var_next)
        x = torch.where(
            mask,
            mean_proposal + var_proposal.sqrt() * _noise(x, generator),
            mean + var.sqrt() * _noise(x, generator),
        )
    return draw_particle(x.view(n, k, *event), log_w, generator)


# ---------------------------------------------------------------------------------- posterior

PosteriorMethod = Literal["smc", "dps"]
POSTERIOR_METHODS: tuple[str, ...] = get_args(PosteriorMethod)
# (x0 (N, *event_shape) in the model's units, rows (N,), timestep) -> (N,) log g_t
LogTwist = Callable[[Tensor, Tensor, int], Tensor]


@dataclass(frozen=True)
class Likelihood:
    r"""An observation :math:`o` read in the model's units, for :func:`posterior_by_smc` and
    :func:`posterior_by_dps`.

    Attributes:
        log_likelihood: ``(x (N, *event_shape), rows (N,)) -> (N,)`` :math:`\log p(o_b \mid x)`
            of data :math:`x` in the model's units (row :math:`b` = ``rows``).
        log_twist: ``(x0, rows, t) -> (N,)`` :math:`\log g_t` read at the denoiser's
            :math:`\hat x_0(x_t, t)`, differentiable in ``x0``; ``None``: :math:`g_t \equiv 1`
            (proposals are the model's own steps and the weights are :math:`p(o \mid x)` alone).
    """

    log_likelihood: Callable[[Tensor, Tensor], Tensor]
    log_twist: LogTwist | None


def _scored(observation: Observation, x: Tensor, rows: Tensor) -> Tensor:
    """``(N,)`` the observation's log-likelihood of data ``x``, its shape checked."""
    values = observation.log_likelihood(x, rows)
    if values.shape != rows.shape:
        raise DataError(
            f"{observation.description}: log_likelihood gave shape {tuple(values.shape)} for "
            f"{len(rows)} examples, expected ({len(rows)},)"
        )
    return values


def observation_likelihood(
    observation: Observation,
    schedule: NoiseSchedule,
    to_data: Callable[[Tensor], Tensor],
    *,
    scale: float = 1.0,
    data_variance: float = 1.0,
    value_range: tuple[float, float] | None = None,
) -> Likelihood:
    r"""The :class:`Likelihood` of an observation made in data units, with the twisting functions

    .. math::
        g_t(x_t) = \tilde p_t\big(o \mid \hat x_0(x_t, t)\big), \qquad
        \tilde p_t = \text{the observation widened by } s^2 \tau_t^2
        \ (:meth:`~genlab.samplers.posterior.Observation.widened`),

    :math:`\tau_t^2` the variance of :math:`x_0` given :math:`x_t` for Gaussian data of variance
    :math:`v` (:func:`x0_variance`) and :math:`s` the data units per model unit: a Gaussian
    measurement :math:`y = f(x) + \sigma\varepsilon` is scored at :math:`\hat x_0` with variance
    :math:`\sigma^2 + s^2\tau_t^2`, which is :math:`p(y \mid x_t)` for Gaussian data and a mask
    (and errs wide for an :math:`f` that averages, e.g. downsampling); a class under a
    classifier is scored at :math:`\hat x_0` as it is (Wu et al., 2023). At :math:`t = 0`,
    :math:`\tau_0^2 \approx 0` and :math:`g_0 \approx p(o \mid \hat x_0)`.

    Given ``value_range``, :math:`\hat x_0` is clipped to it in data units before it is scored:
    at high noise an undertrained network's :math:`\hat x_0` can lie orders of magnitude
    outside the data (:math:`\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\hat\epsilon) /
    \sqrt{\bar\alpha_t}`), where :math:`\log g_t` reaches :math:`-10^{25}` and its gradient
    overflows to NaN. The twists only decide how well :math:`K` particles do, not the target
    (:func:`posterior_by_smc`), so clipping leaves the sampler exact.

    Arguments:
        to_data: the model's units -> data units, differentiable.
        scale: :math:`s`.
        data_variance: :math:`v`.
        value_range: the data's ``(low, high)``; ``None``: :math:`\hat x_0` as it is.
    """
    check(scale > 0, f"scale must be positive, got {scale}")
    check(data_variance > 0, f"data_variance must be positive, got {data_variance}")

    def log_likelihood(x: Tensor, rows: Tensor) -> Tensor:
        return _scored(observation, to_data(x), rows)

    def log_twist(x0: Tensor, rows: Tensor, step: int) -> Tensor:
        alpha_bar = schedule.alpha_bar(torch.tensor([step], device=x0.device), x0.new_zeros(1))
        widening = scale**2 * float(x0_variance(alpha_bar, data_variance))
        x = to_data(x0) if value_range is None else to_data(x0).clamp(*value_range)
        return _scored(observation.widened(widening), x, rows)

    return Likelihood(log_likelihood, log_twist)


def _twisted(
    process: ReverseProcess, likelihood: Likelihood, x: Tensor, rows: Tensor, step: int
) -> tuple[Denoised, Tensor, Tensor]:
    r"""The denoiser at :math:`x_t`, :math:`\log g_t(x_t)` ``(N,)`` and
    :math:`\nabla_{x_t} \log g_t(x_t)` (through the denoiser; zeros where :math:`g \equiv 1`)."""
    t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
    if likelihood.log_twist is None:
        return process.denoise(x, t), x.new_zeros(len(x)), torch.zeros_like(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        prediction = process.denoise(x, t)
        log_g = likelihood.log_twist(prediction.x0, rows, step)
        (gradient,) = torch.autograd.grad(log_g.sum(), x)
    detached = Denoised(
        prediction.x0.detach(), prediction.eps.detach(), prediction.log_var.detach()
    )
    return detached, log_g.detach(), gradient


def posterior_by_smc(
    process: ReverseProcess,
    likelihood: Likelihood,
    rows: Tensor,
    x: Tensor,
    *,
    particles: int = 16,
    ess_fraction: float = 0.5,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Twisted sequential Monte Carlo for :math:`p_\theta(x \mid o) \propto p_\theta(x)\,
    p(o \mid x)` (TDS, Wu et al., 2023): asymptotically exact.

    Each filter runs :math:`K` particles down the reverse process. With :math:`L = T - 1`,
    :math:`x_{-1}` the data and twisting functions :math:`g_t` (:class:`Likelihood`), the
    proposals are the model's steps shifted by the twist's gradient,

    .. math::
        r(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t) + \Sigma_t \nabla_{x_t}
        \log g_t(x_t),\ \Sigma_t\big), \qquad x_L \sim \mathcal N(0, I),

    (:math:`\Sigma_t` the model step's diagonal variance) and the incremental weights

    .. math::
        w_L = g_L(x_L), \qquad
        w_{t-1} = \frac{p_\theta(x_{t-1} \mid x_t)\, g_{t-1}(x_{t-1})}
        {r(x_{t-1} \mid x_t)\, g_t(x_t)}, \qquad
        w_{-1} = \frac{p(o \mid x_{-1})}{g_0(x_0)}, \quad x_{-1} \sim p_\theta(x_{-1} \mid x_0)

    (the last step draws the data from the decoder). Their product telescopes to
    :math:`p_\theta(x_{-1:L})\, p(o \mid x_{-1}) / \prod r`, so the final target is exactly
    :math:`p_\theta(x_{-1:L} \mid o)` whatever :math:`g` (which only decides how well
    :math:`K` particles do): the law of a particle drawn by its final weight converges to
    :math:`p_\theta(x \mid o)` as :math:`K \to \infty` (bias :math:`O(1/K)`). Filters whose
    effective sample size falls below ``ess_fraction`` :math:`K` are resampled
    systematically, keeping the running normaliser (:func:`_resample_degenerate`), so
    :math:`\log \frac1K \sum_k w_k` of the returned weights is the log of an unbiased
    estimate of :math:`p_\theta(o)`. With :math:`g \equiv 1` this is ancestral sampling
    weighted by :math:`p(o \mid x_{-1})` (importance sampling from the prior). Cost: :math:`K`
    ancestral samples, each step with a gradient through the denoiser.

    Arguments:
        likelihood: :math:`p(o \mid x)` and the twists, in the model's units.
        rows: ``(F,)`` long, the observation's row that each filter conditions on.
        x: ``(F * K, *event_shape)`` the start :math:`x_L`, a draw of :math:`\mathcal N(0, I)`
            (particle :math:`j` of filter :math:`i` at row :math:`iK + j`).
        particles: :math:`K` per filter.
        ess_fraction: resample when the ESS falls below this fraction of :math:`K`.

    Returns:
        ``(F, K, *event_shape)`` the particles (data drawn by the decoder) and ``(F, K)``
        float64 their log-weights (:func:`draw_particle` picks one per filter).

    References:
        Wu, Trippe, Naesseth, Blei & Cunningham, "Practical and Asymptotically Exact
        Conditional Sampling in Diffusion Models", NeurIPS 2023, arXiv:2306.17775.
    """
    check(particles >= 1, f"particles must be >= 1, got {particles}")
    check(0 < ess_fraction <= 1, f"ess_fraction must be in (0, 1], got {ess_fraction}")
    f, k = len(rows), particles
    check(len(x) == f * k, f"x must hold {f} x {k} particles, got {len(x)}")
    of_particle = rows.repeat_interleave(k)  # (F * K,)
    log_w = x.new_zeros(f, k, dtype=torch.float64)
    pending = torch.zeros_like(log_w)  # log p / r - log g_t of the last transition
    for step in _progress(range(process.total - 1, -1, -1), progress, "smc", process.total):
        prediction, log_g, gradient = _twisted(process, likelihood, x, of_particle, step)
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        mean, log_var = process.transition(x, t, prediction)
        log_g = log_g.view(f, k).double()
        log_w = log_w + pending + log_g
        log_w, (x, mean, log_var, gradient, log_g) = _resample_degenerate(
            log_w, (x, mean, log_var, gradient, log_g), ess_fraction, generator
        )
        if step == 0:
            data = process.decoder.sample(mean, log_var, generator)
            log_p = likelihood.log_likelihood(data, of_particle).view(f, k).double()
            log_w = log_w + log_p - log_g
            return data.view(f, k, *data.shape[1:]), log_w
        var = log_var.exp()
        shift = var * gradient
        x = mean + shift + var.sqrt() * _noise(x, generator)
        log_ratio = (x - mean - shift).square() - (x - mean).square()  # log p - log r, x 2 var
        pending = (log_ratio / (2 * var)).flatten(1).sum(1).view(f, k).double() - log_g
    raise AssertionError("unreachable")


def posterior_by_dps(
    process: ReverseProcess,
    likelihood: Likelihood,
    rows: Tensor,
    x: Tensor,
    *,
    step_size: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Tensor:
    r"""``(N, *event_shape)`` diffusion posterior sampling (DPS, Chung et al., 2023):
    approximate, one particle, no weights.

    Each reverse step is shifted up the twist's gradient,

    .. math::
        x_{t-1} = \mu_\theta(x_t) + \zeta\, \Sigma_t \nabla_{x_t} \log g_t(x_t)
        + \Sigma_t^{1/2} z, \qquad g_t(x_t) = \tilde p_t\big(o \mid \hat x_0(x_t, t)\big),

    and the data is the decoder's draw at the end. :math:`\zeta` = ``step_size``; Chung et al.
    scale the step by :math:`\zeta' / \lVert y - f(\hat x_0) \rVert` instead, defined for
    Gaussian measurements only, where the widened twist (:func:`observation_likelihood`) keeps
    this gradient tame at high noise. With :math:`\zeta = 1` this is one particle of
    :func:`posterior_by_smc`'s proposal, never weighed: :math:`p(o \mid \hat x_0)` stands in
    for :math:`p(o \mid x_t)` with nothing to correct it, so the draws are biased whatever
    the budget (``tests/test_diffusion_posterior.py`` shows it on a 2-D mixture). Cost: one
    ancestral sample with a gradient through the denoiser at each step.

    Arguments:
        likelihood: its ``log_twist`` gives the gradient (required).
        rows: ``(N,)`` long, the observation's row of each draw.
        x: ``(N, *event_shape)`` the start :math:`x_L`, a draw of :math:`\mathcal N(0, I)`.

    References:
        Chung, Kim, Mccann, Klasky & Ye, "Diffusion Posterior Sampling for General Noisy
        Inverse Problems", ICLR 2023, arXiv:2209.14687.
    """
    check(step_size >= 0, f"step_size must be >= 0, got {step_size}")
    check(likelihood.log_twist is not None, "DPS follows the gradient of a twist: give log_twist")
    check(len(x) == len(rows), f"x must hold one draw per row ({len(rows)}), got {len(x)}")
    for step in _progress(range(process.total - 1, -1, -1), progress, "dps", process.total):
        prediction, _, gradient = _twisted(process, likelihood, x, rows, step)
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        mean, log_var = process.transition(x, t, prediction)
        if step == 0:
            return process.decoder.sample(mean, log_var, generator)
        var = log_var.exp()
        x = mean + step_size * var * gradient + var.sqrt() * _noise(x, generator)
    raise AssertionError("unreachable")
