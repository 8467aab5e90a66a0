r"""Decoder likelihoods :math:`p(x \mid \theta)`: a decoder's output :math:`\theta` as a distribution.

Each likelihood maps data (in data units) to a *target* the distribution is defined on, and
returns the log-density of the data in data units:

.. math::
    \log p(x \mid \theta) = \log p_\theta(t(x)) + \log \left|\det \frac{\partial t}{\partial x}\right|.

============================  ==========================  ================================
likelihood                    data                        target :math:`t(x)`
============================  ==========================  ================================
``bernoulli``                 binary (first/last level)   :math:`b \in \{0, 1\}`
``continuous_bernoulli``      bounded                     :math:`u = (x - a)/(b - a) \in [0, 1]`
``gaussian``                  real                        standardised :math:`(x - m)/s`
``discretized_logistic``      :math:`L` levels            level index :math:`j \in \{0..L-1\}`
``categorical``               :math:`L` levels            level index :math:`j \in \{0..L-1\}`
``discretized_logistic_mixture``  :math:`L` levels        level index :math:`j \in \{0..L-1\}`
``gaussian_mixture``          real                        standardised :math:`(x - m)/s`
============================  ==========================  ================================

**Discrete likelihoods as densities.** For data with :math:`L` levels spaced :math:`\delta`
apart, the trainer feeds density models dequantised values :math:`\tilde x = x + \delta(v -
\tfrac12)`, :math:`v \sim U[0,1)^D`, so each level owns the bin
:math:`[x - \delta/2, x + \delta/2)`. A discrete likelihood :math:`P(j \mid \theta)` becomes the
density that is constant on each bin,

.. math::
    p(\tilde x \mid \theta) = P(\mathrm{bin}(\tilde x) \mid \theta) / \delta^D, \qquad
    \mathrm{bin}(\tilde x) = \operatorname{round}((\tilde x - \text{low}) / \delta),

which integrates to one (each bin has volume :math:`\delta^D`), so the target's
log-Jacobian is :math:`-D \log \delta`. Then :math:`\log p(\tilde x) + D \log \delta = \log
P(x)` exactly, for every draw of the dequantisation noise, and the bits/dim of
:mod:`genlab.metrics.likelihood` is the discrete likelihood itself, with no dequantisation gap.
Bounded continuous likelihoods (continuous Bernoulli) use the dequantised support
:math:`[a, b] = [\text{low} - \delta/2, \text{high} + \delta/2]` for discrete data.

References:
    Loaiza-Ganem & Cunningham, "The continuous Bernoulli", NeurIPS 2019, arXiv:1907.06845.
    Salimans et al., "PixelCNN++", ICLR 2017, arXiv:1701.05517 (discretised logistic).
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models",
    ICLR 2016, arXiv:1511.01844.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
    constraints,
)

from genlab.config import check
from genlab.data.dataset import DataInfo
from genlab.errors import DataError
from genlab.nn.normalizer import AffineNormalizer

LikelihoodName = Literal[
    "bernoulli",
    "continuous_bernoulli",
    "gaussian",
    "discretized_logistic",
    "categorical",
    "discretized_logistic_mixture",
    "gaussian_mixture",
]
LIKELIHOODS: tuple[str, ...] = get_args(LikelihoodName)
DecoderLikelihood = Literal["auto", LikelihoodName]
# The most levels a likelihood that sums over every level (its mean, a categorical's outputs)
# takes: memory grows as batch x D x L (uint8 images have 256).
MAX_SUMMED_LEVELS = 256
# Values of a network's outputs (a likelihood's parameters, and a conv decoder's last hidden
# layer) that one no-grad evaluation pass holds: about 16 MB of float32.
# Larger passes are memory-bound: a PixelCNN's exact log p of 800 28x28 digits (256 levels, so
# 200,704 parameters an image) took 4.1-5.9 s in one pass and 1.1-1.3 s in passes of 16-32
# images, one thread; a smoke VAE's 10-sample bound of 500 digits 2.3 s in passes of 2,674
# samples of an example (its parameters alone) and 0.9-1.3 s in passes of 668.
PASS_VALUES = 1 << 22
MIN_LOG_SCALE = -7.0


class _DiscretizedLevels(Distribution):
    """A distribution over the level indices ``0..L-1`` of a location ``loc``: what the
    discretised logistic and Gaussian share (their ``log_prob`` differs): ``loc`` and
    ``log_scale`` on the :math:`[-1, 1]` scale, broadcast together, and ``levels``."""

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    has_rsample = False

    def __init__(self, loc: Tensor, log_scale: Tensor, levels: int) -> None:
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        self.levels = levels
        super().__init__(self.loc.shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.levels - 1)

    def probs(self) -> Tensor:
        """``(*batch, L)`` the probability of every level."""
        levels = torch.arange(self.levels, device=self.loc.device, dtype=self.loc.dtype)
        return self.log_prob(levels.view(-1, *(1,) * self.loc.dim())).movedim(0, -1).exp()

    def _exceeds(self, z: Tensor) -> Tensor:
        r""":math:`P(Y > e)` of the variable before rounding, at :math:`z = (\mu - e)/s`."""
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        r"""The tail-sum formula for a variable on :math:`0, \dots, L-1`:

        .. math::
            \mathbb E[J] = \sum_{j=0}^{L-2} P(J > j) = \sum_{j=0}^{L-2} P(Y > y_j + h),

        :math:`L - 1` CDF values accumulated one edge at a time (memory of one value per
        coordinate, not :math:`L`: 8-bit images have 256 levels).
        """
        half = 1.0 / (self.levels - 1)
        inv_scale = torch.exp(-self.log_scale)
        first = (self.loc + 1.0 - half) * inv_scale  # z at the first bin's upper edge
        step = 2.0 * half * inv_scale
        mean = self._exceeds(first)
        for j in range(1, self.levels - 1):
            mean = mean + self._exceeds(first - j * step)
        return mean


class DiscretizedLogistic(_DiscretizedLevels):
    r"""A logistic distribution discretised to the levels :math:`j = 0, \dots, L-1`.

    Level :math:`j` sits at :math:`y_j = 2j/(L-1) - 1 \in [-1, 1]` and owns the bin
    :math:`y_j \pm h`, :math:`h = 1/(L-1)`; the first and last bins extend to
    :math:`\mp\infty` so the probabilities sum to one (Salimans et al., 2017). With
    :math:`\sigma` the logistic sigmoid, :math:`s = e^{\log s}`, :math:`u = (y_j + h - \mu)/s`
    and :math:`l = (y_j - h - \mu)/s`:

    .. math::
        P(j) = \begin{cases} \sigma(u) & j = 0 \\ 1 - \sigma(l) & j = L - 1 \\
        \sigma(u) - \sigma(l) = \sigma(u)\,\sigma(-l)\,(1 - e^{-2h/s}) & \text{otherwise,}
        \end{cases}

    the last form being computed in log space without cancellation.

    Arguments:
        loc: ``(*batch)`` location :math:`\mu` on the :math:`[-1, 1]` scale.
        log_scale: ``(*batch)`` :math:`\log s` (clamped below at -7).
        levels: the number of levels :math:`L \ge 2`.

    Example:
        >>> d = DiscretizedLogistic(torch.zeros(3), torch.zeros(3), levels=5)
        >>> float(d.log_prob(torch.arange(5.0)[:, None]).exp().sum(0)[0])  # doctest: +ELLIPSIS
        1.0...
    """

    def __init__(self, loc: Tensor, log_scale: Tensor, levels: int) -> None:
        super().__init__(loc, log_scale.clamp_min(MIN_LOG_SCALE), levels)

    def log_prob(self, value: Tensor) -> Tensor:
        half = 1.0 / (self.levels - 1)
        inv_scale = torch.exp(-self.log_scale)
        centred = (2.0 * half) * value - 1.0 - self.loc
        log_cdf_upper = F.logsigmoid((centred + half) * inv_scale)  # log sigma(u)
        log_sf_lower = F.logsigmoid((half - centred) * inv_scale)  # log sigma(-l)
        log_width = torch.log(-torch.expm1(-2.0 * half * inv_scale))  # log(1 - e^{-2h/s})
        not_first = (value > 0).to(log_cdf_upper.dtype)
        not_last = (value < self.levels - 1).to(log_cdf_upper.dtype)
        return (
            not_last * log_cdf_upper + not_first * log_sf_lower + not_first * not_last * log_width
        )

    def _exceeds(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def sample_with(self, generator: torch.Generator | None) -> Tensor:
        """Level indices drawn with ``generator`` (a logistic draw, rounded to its bin)."""
        u = torch.rand(
            self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype
        ).clamp(1e-6, 1 - 1e-6)
        y = self.loc + self.log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        return torch.round((y + 1.0) * (self.levels - 1) / 2.0).clamp(0, self.levels - 1)


class DiscretizedGaussian(_DiscretizedLevels):
    r"""A Gaussian discretised to the levels :math:`j = 0, \dots, L-1`, with exact normal CDFs.

    Level :math:`j` sits at :math:`y_j = 2j/(L-1) - 1 \in [-1, 1]` and owns the bin
    :math:`y_j \pm h`, :math:`h = 1/(L-1)`; the first and last bins extend to :math:`\mp\infty`
    so the probabilities sum to one (the decoder of Ho et al., 2020, eq. 13). With
    :math:`\Phi` the standard normal CDF, :math:`u = (y_j + h - \mu)/\sigma` and
    :math:`l = (y_j - h - \mu)/\sigma`:

    .. math::
        P(j) = \begin{cases} \Phi(u) & j = 0 \\ \Phi(-l) & j = L - 1 \\
        \Phi(u) - \Phi(l) & \text{otherwise,} \end{cases}

    in log space from :math:`\log\Phi` (``torch.special.log_ndtr``, exact in both tails, not
    the tanh approximation of the DDPM code), the difference taken in the tail where it does
    not cancel: :math:`\log(\Phi(u) - \Phi(l)) = \log\Phi(u) + \log(1 - e^{\log\Phi(l) -
    \log\Phi(u)})`, or the same with :math:`(-l, -u)` when the bin lies above the mean. The end
    bins take the same formula with their open side at infinity (:math:`\Phi(-\infty) = 0`:
    :math:`\log\Phi(u)`, or :math:`\log\Phi(-l)` for the last), so each value costs two
    :math:`\log\Phi` (four, a tenth of a 28x28 diffusion step, when the end bins were computed
    apart).

    Arguments:
        loc: ``(*batch)`` mean :math:`\mu` on the :math:`[-1, 1]` scale.
        log_scale: ``(*batch)`` :math:`\log \sigma`.
        levels: the number of levels :math:`L \ge 2`.

    Example:
        >>> d = DiscretizedGaussian(torch.zeros(3), torch.zeros(3), levels=5)
        >>> float(d.log_prob(torch.arange(5.0)[:, None]).exp().sum(0)[0])  # doctest: +ELLIPSIS
        1.0...
    """

    def log_prob(self, value: Tensor) -> Tensor:
        half = 1.0 / (self.levels - 1)
        inv_scale = torch.exp(-self.log_scale)
        centred = (2.0 * half) * value - 1.0 - self.loc  # y_j - mu
        upper = (centred + half) * inv_scale  # u
        lower = (centred - half) * inv_scale  # l
        first, last = value <= 0, value >= self.levels - 1
        # the bin lies above the mean (the last one always): use Phi(-l) - Phi(-u)
        flip = ((centred > 0) & ~first) | last
        a = torch.special.log_ndtr(torch.where(flip, -lower, upper))
        # an end bin's other side is at infinity: Phi(-inf) = 0 leaves log Phi(u) (or Phi(-l))
        b = torch.special.log_ndtr(
            torch.where(first | last, -math.inf, torch.where(flip, -upper, lower))
        )
        return a + torch.log(-torch.expm1((b - a).clamp(max=-1e-30)))

    def _exceeds(self, z: Tensor) -> Tensor:
        return torch.special.ndtr(z)

    def sample_with(self, generator: torch.Generator | None) -> Tensor:
        """Level indices drawn with ``generator``: a Gaussian draw, rounded to its bin (exact)."""
        eps = torch.randn(
            self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype
        )
        y = self.loc + self.log_scale.exp() * eps
        return torch.round((y + 1.0) * (self.levels - 1) / 2.0).clamp(0, self.levels - 1)


class Likelihood(nn.Module):
    r"""Base class: ``params`` of shape ``(*batch, n_params, D)`` -> :math:`p(x \mid \theta)`.

    Subclasses define :meth:`distribution` over the target and the map :meth:`target` from
    data units; :meth:`log_prob` adds the constant log-Jacobian :attr:`log_jacobian`.
    """

    n_params: int = 1
    discrete: bool = False  # a law over the data's levels: no dequantisation needed

    def __init__(self, info: DataInfo) -> None:
        super().__init__()
        self.info = info

    def prepare(self, x_train: Tensor) -> None:
        """Fit data-dependent constants (the Gaussian's normaliser)."""

    def rows_per_pass(self, examples_per_row: int = 1, hidden_channels: int = 0) -> int:
        """Rows one no-grad evaluation pass should take so that the network's outputs hold
        about :data:`PASS_VALUES` values: ``(n_params + hidden_channels) D`` an example (the
        likelihood's parameters, and a conv decoder's last hidden layer of ``hidden_channels``
        values a pixel; a PixelCNN's stacks are not counted, its parameters dominate),
        ``examples_per_row`` examples a row (a row: an example, or an importance sample of that
        many examples); at least 1."""
        per_example = (self.n_params + hidden_channels) * self.info.n_features
        return max(1, PASS_VALUES // (examples_per_row * per_example))

    def target(self, x: Tensor) -> Tensor:
        """``(*batch, D)`` data units -> the distribution's target."""
        raise NotImplementedError

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`DataError` if user data lies outside the likelihood's support."""

    def checked_target(self, x: Tensor) -> Tensor:
        """``(B, D)`` the target of data ``(B, *event_shape)``, checked against the support."""
        target = self.target(x.flatten(1))
        self.check_target(target)
        return target

    def check_data(self, x: Tensor) -> None:
        """Raise :class:`DataError` if data ``(B, *event_shape)`` lies outside the support: the
        set-up check of a training set (by default through :meth:`checked_target`)."""
        self.checked_target(x)

    def from_target(self, target: Tensor) -> Tensor:
        """The inverse of :meth:`target`: target values back to data units."""
        raise NotImplementedError

    @property
    def log_jacobian(self) -> Tensor | float:
        r""":math:`\log |\det \partial t / \partial x|` for one example (a constant)."""
        raise NotImplementedError

    def distribution(self, params: Tensor) -> Distribution:
        """The distribution over the target, batch shape ``params.shape[:-2]``, event ``(D,)``."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        """``(*batch)`` log-density of the data whose target is ``target``, in data units."""
        return self.distribution(params).log_prob(target) + self.log_jacobian

    def coordinate_log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        """``(*batch, D)`` log-probability of each coordinate of the target, without the Jacobian.

        Every likelihood here factorises over coordinates, so summing a subset of these gives
        the likelihood of the observed part of an example (conditional sampling).
        """
        return self.distribution(params).base_dist.log_prob(target)

    def total_log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        """The sum of :meth:`log_prob` over the batch (what a training loss needs)."""
        return self.log_prob(params, target).sum()

    def mean(self, params: Tensor) -> Tensor:
        """``(*batch, D)`` the mean of :math:`p(x \\mid \\theta)` in data units."""
        return self.from_target(self.distribution(params).mean)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """``(*batch, D)`` one draw in data units."""
        raise NotImplementedError

    def check_temperature(self, temperature: float) -> None:
        r"""Raise :class:`~genlab.errors.ConfigError` unless :meth:`sample_coordinate` can draw at
        ``temperature`` :math:`T`: positive, and 1 unless the likelihood is a law over at most
        ``MAX_SUMMED_LEVELS`` levels (the tempered conditional :math:`p^{1/T}` is then exact by
        enumeration; that of a density on continuous values, a Gaussian mixture's, is no
        longer a mixture and has no simple sampler)."""
        check(temperature > 0, f"temperature must be positive, got {temperature}")
        if temperature == 1:
            return
        check(
            self.discrete,
            f"temperature={temperature} needs a likelihood over discrete levels (the tempered "
            f"conditional is then exact over the levels); {type(self).__name__} is a density on "
            "continuous values, whose conditional raised to 1/T has no simple sampler: use "
            "likelihood=categorical (data with levels), or temperature=1",
        )
        levels = self.info.levels or 0
        check(
            levels <= MAX_SUMMED_LEVELS,
            f"temperature={temperature} enumerates every level, and this data has {levels:,} "
            f"(at most {MAX_SUMMED_LEVELS}); use temperature=1",
        )

    def sample_coordinate(
        self,
        params: Tensor,
        d: int,
        generator: torch.Generator | None,
        temperature: float = 1.0,
        *,
        weak: Tensor | None = None,
        weight: float = 0.0,
    ) -> Tensor:
        """``(*batch,)`` one draw of coordinate ``d`` in data units, from ``params``
        ``(*batch, n_params, D)``: here every coordinate is drawn and ``d`` kept (the map to
        data units may differ per coordinate); likelihoods on levels draw ``d`` alone, and
        they alone at a ``temperature`` other than 1 (:meth:`check_temperature`) or guided
        away from a ``weak`` model's parameters with ``weight`` :math:`w > 0`."""
        self.check_temperature(temperature)
        check(
            not weight,
            f"autoguidance needs a likelihood over discrete levels; {type(self).__name__} is a "
            "density on continuous values",
        )
        return self.sample(params, generator)[..., d]


class _LevelLikelihood(Likelihood):
    """Shared by the likelihoods on level indices: the bin map and its :math:`-D \\log \\delta`."""

    discrete = True

    def __init__(self, info: DataInfo) -> None:
        super().__init__(info)
        check(
            info.levels is not None,
            f"{info.name}: a discrete likelihood needs data with discrete levels; this data is "
            "continuous (use likelihood=gaussian)",
        )
        self.levels = info.levels
        self.low = info.value_range[0]
        self.step = info.level_step

    def target(self, x: Tensor) -> Tensor:
        # in place after the first op: the training step runs this on every batch
        return (x - self.low).mul_(1.0 / self.step).round_().clamp_(0, self.levels - 1)

    def from_target(self, target: Tensor) -> Tensor:
        return self.low + self.step * target

    def level_logits(self, params: Tensor) -> Tensor:
        r"""``(*batch, D, L)`` :math:`\log P(j)` of every level :math:`j` of every coordinate, up
        to a constant per coordinate: here by enumerating the levels through
        :meth:`coordinate_log_prob` (the discretised logistics)."""
        levels = torch.arange(self.levels, device=params.device, dtype=params.dtype)
        values = levels.view(-1, *(1,) * (params.dim() - 1))  # (L, 1.., 1): broadcasts
        return self.coordinate_log_prob(params, values).movedim(0, -1)

    def sample_coordinate(
        self,
        params: Tensor,
        d: int,
        generator: torch.Generator | None,
        temperature: float = 1.0,
        *,
        weak: Tensor | None = None,
        weight: float = 0.0,
    ) -> Tensor:
        r"""Coordinate ``d`` alone: the level map is the same for every coordinate, so its
        parameters suffice (an autoregressive sampler's pass then draws one value per example,
        not ``D``).

        At ``temperature`` :math:`T \ne 1`, a draw of the tempered conditional over the
        levels, :math:`P_T(j) = P(j)^{1/T} / \sum_i P(i)^{1/T}`, i.e. :math:`\mathrm{softmax}`
        of :meth:`level_logits` divided by :math:`T` (exact: the levels are enumerated). With
        a ``weak`` model's parameters and ``weight`` :math:`w > 0` (autoguidance,
        :mod:`genlab.models.autoguidance`), the guided conditional
        :math:`\tilde P(j) \propto \big(P(j)^{1 + w} P_\text{weak}(j)^{-w}\big)^{1/T}`:
        the softmax of :math:`((1 + w)\,\ell_j - w\,\ell^\text{weak}_j) / T`. At
        :math:`T = 1` and :math:`w = 0`, the likelihood's own draw, unchanged.
        """
        self.check_temperature(temperature)
        params = params[..., d : d + 1]
        if temperature == 1 and not weight:
            return self.sample(params, generator)[..., 0]
        logits = self.level_logits(params)
        if weight:
            check(weak is not None, "autoguidance needs the weak model's parameters (weak=)")
            logits = (1 + weight) * logits - weight * self.level_logits(weak[..., d : d + 1])
        level = _gumbel_argmax(logits / temperature, generator)
        return self.from_target(level[..., 0, 0].to(params.dtype))

    @property
    def log_jacobian(self) -> float:
        return -self.info.n_features * math.log(self.step)


class BernoulliLikelihood(_LevelLikelihood):
    r"""Independent Bernoulli pixels on binary data (the first and the last level).

    The target is :math:`b = j / (L - 1) \in \{0, 1\}`; its density in data units is
    :math:`P(b)/\delta^D` (see the module docstring). With dynamic binarisation
    (Salakhutdinov & Murray, 2008) the model trains on :math:`b \sim \mathrm{Bernoulli}(j/(L-1))`
    and is then a model of binarised data: :meth:`check_target` rejects other levels.
    """

    def target(self, x: Tensor) -> Tensor:
        return super().target(x).mul_(1.0 / (self.levels - 1))

    def intensity(self, x: Tensor) -> Tensor:
        """Grey level in [0, 1] of each coordinate, the probability that binarisation draws 1."""
        return self.target(x)

    def is_binary(self, x: Tensor) -> bool:
        r"""Whether every value of ``x`` (data units) rounds to the first or the last level:
        :math:`|x - m| \ge r - \delta/2` for the range's midpoint :math:`m`, half-width
        :math:`r` and level step :math:`\delta`; three passes where the target and a test of
        it take eight (a training run's set-up checks the whole training set)."""
        low, high = self.info.value_range
        middle, half = (low + high) / 2, (high - low) / 2
        return bool((x - middle).abs_().ge_(half - self.step / 2).all())

    def check_data(self, x: Tensor) -> None:
        if not self.is_binary(x):
            raise DataError(
                "the bernoulli likelihood needs binary data (the first and last level only), "
                "but this data has intermediate levels: train on binarised data (the VAE's "
                "binarize=true binarises each batch) or use continuous_bernoulli or "
                "discretized_logistic for grey levels"
            )

    def check_target(self, target: Tensor) -> None:
        if not bool(((target == 0) | (target == 1)).all()):
            raise DataError(
                "the bernoulli likelihood is a distribution over binary data (the first and last "
                "level only), but this data has intermediate levels; a model trained with "
                "binarize=true models binarised data: evaluate it on binarised data, or use "
                "continuous_bernoulli or discretized_logistic for grey levels"
            )

    def from_target(self, target: Tensor) -> Tensor:
        return super().from_target(target * (self.levels - 1))

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=params[..., 0, :], validate_args=False), 1)

    def total_log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        # one fused kernel and no per-example intermediate: the lean training step; squeeze is a
        # view whose backward is free (indexing would scatter the gradient into zeros)
        logits = params.squeeze(-2)
        examples = logits.numel() // logits.shape[-1]
        return (
            -F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="sum")
            + examples * self.log_jacobian
        )

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = torch.sigmoid(params[..., 0, :])
        u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
        return self.from_target((u < probs).to(probs.dtype))


def _check_summed_levels(name: str, info: DataInfo) -> None:
    check(
        info.levels is None or info.levels <= MAX_SUMMED_LEVELS,
        f"{info.name}: likelihood={name} sums over every level, and this data has "
        f"{info.levels:,} (at most {MAX_SUMMED_LEVELS}); use likelihood=gaussian",
    )


class DiscretizedLogisticLikelihood(_LevelLikelihood):
    """:class:`DiscretizedLogistic` per coordinate; the decoder outputs location and log-scale."""

    n_params = 2

    def __init__(self, info: DataInfo) -> None:
        super().__init__(info)
        _check_summed_levels("discretized_logistic", info)

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(
            DiscretizedLogistic(params[..., 0, :], params[..., 1, :], self.levels), 1
        )

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.from_target(self.distribution(params).base_dist.sample_with(generator))


class CategoricalLikelihood(_LevelLikelihood):
    """A free categorical over the :math:`L` levels of each coordinate (``L`` decoder outputs)."""

    def __init__(self, info: DataInfo) -> None:
        super().__init__(info)
        _check_summed_levels("categorical", info)
        self.n_params = self.levels

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(Categorical(logits=params.transpose(-1, -2), validate_args=False), 1)

    def coordinate_log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        r""":math:`\log \mathrm{softmax}(\ell_d)_{x_d}` of each coordinate: one fused log-softmax
        and pick (``cross_entropy``, forward and backward), never a normalised copy of all
        :math:`L` logits of every coordinate (6.4 M of them for 32 images of 28x28 at 8 bits)."""
        d = params.shape[-1]
        batch = torch.broadcast_shapes(params.shape[:-2], target.shape[:-1])
        params, target = params.expand(*batch, self.levels, d), target.expand(*batch, d)
        nll = F.cross_entropy(
            params.reshape(-1, self.levels, d), target.reshape(-1, d).long(), reduction="none"
        )
        return -nll.view(target.shape)

    def log_prob(self, params: Tensor, target: Tensor) -> Tensor:
        return self.coordinate_log_prob(params, target).sum(-1) + self.log_jacobian

    def mean(self, params: Tensor) -> Tensor:
        levels = torch.arange(self.levels, device=params.device, dtype=params.dtype)
        return self.from_target(torch.einsum("...ld,l->...d", params.softmax(-2), levels))

    def level_logits(self, params: Tensor) -> Tensor:
        """``(*batch, D, L)`` the decoder's logits themselves."""
        return params.transpose(-1, -2)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        logits = params.transpose(-1, -2)  # (*batch, D, L)
        u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_min(1e-20)
        gumbel = -torch.log(-torch.log(u))
        return self.from_target((logits + gumbel).argmax(-1).to(params.dtype))


def _gumbel_argmax(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    r"""Indices drawn from :math:`\mathrm{softmax}` of ``logits`` along the last axis (Gumbel-max)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_min(1e-20)
    return (logits - torch.log(-torch.log(u))).argmax(-1, keepdim=True)


def _mixture_parts(params: Tensor, components: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(*batch, 3K, D)`` -> mixture logits, locations, log-scales, each ``(*batch, D, K)``."""
    parts = params.unflatten(-2, (3, components)).transpose(-1, -2)  # (*batch, 3, D, K)
    return parts[..., 0, :, :], parts[..., 1, :, :], parts[..., 2, :, :]


class DiscretizedLogisticMixtureLikelihood(_LevelLikelihood):
    r"""A mixture of :math:`K` :class:`DiscretizedLogistic` per coordinate (PixelCNN++).

    .. math::
        P(j) = \sum_{k=1}^K \pi_k\, P_{\mathrm{DL}}(j; \mu_k, s_k), \qquad
        \pi = \mathrm{softmax}(a),

    with parameters :math:`(a, \mu, \log s)` from the network: ``n_params = 3K``. A sum of
    normalised distributions with weights summing to one, so normalised over the :math:`L`
    levels (tested by enumeration).
    """

    def __init__(self, info: DataInfo, components: int) -> None:
        super().__init__(info)
        check(components >= 1, f"components must be >= 1, got {components}")
        self.components = components
        self.n_params = 3 * components

    def distribution(self, params: Tensor) -> Distribution:
        logits, loc, log_scale = _mixture_parts(params, self.components)
        mixture = MixtureSameFamily(
            Categorical(logits=logits, validate_args=False),
            DiscretizedLogistic(loc, log_scale, self.levels),
            validate_args=False,
        )
        return Independent(mixture, 1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        logits, loc, log_scale = _mixture_parts(params, self.components)
        k = _gumbel_argmax(logits, generator)  # (*batch, D, 1)
        chosen = DiscretizedLogistic(
            loc.gather(-1, k).squeeze(-1), log_scale.gather(-1, k).squeeze(-1), self.levels
        )
        return self.from_target(chosen.sample_with(generator))


class ContinuousBernoulliLikelihood(Likelihood):
    r"""The continuous Bernoulli on :math:`u = (x - a)/(b - a) \in [0, 1]`, a density.

    :math:`[a, b]` is the data's value range, widened by half a level step on each side for
    discrete data (the support of the dequantised values); log-Jacobian
    :math:`-D \log(b - a)`.
    """

    def __init__(self, info: DataInfo) -> None:
        super().__init__(info)
        low, high = info.value_range
        half = 0.0 if info.level_step is None else info.level_step / 2
        self.low, self.width = low - half, (high + half) - (low - half)

    def target(self, x: Tensor) -> Tensor:
        return (x - self.low) / self.width

    def check_target(self, target: Tensor) -> None:
        if not bool(((target >= 0) & (target <= 1)).all()):
            raise DataError(
                f"the continuous Bernoulli models data in [{self.low}, {self.low + self.width}]; "
                "this data lies outside that range"
            )

    def from_target(self, target: Tensor) -> Tensor:
        return self.low + self.width * target

    @property
    def log_jacobian(self) -> float:
        return -self.info.n_features * math.log(self.width)

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(ContinuousBernoulli(logits=params[..., 0, :], validate_args=False), 1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        base = self.distribution(params).base_dist
        u = torch.rand(
            params.shape[:-2] + params.shape[-1:],
            generator=generator,
            device=params.device,
            dtype=params.dtype,
        )
        return self.from_target(base.icdf(u))


class _StandardizedLikelihood(Likelihood):
    r"""Shared by the likelihoods on standardised data :math:`t = (x - m)/s` (the normaliser is
    fitted in :meth:`prepare`); log-Jacobian :math:`-\sum_d \log s_d`."""

    def __init__(self, info: DataInfo) -> None:
        super().__init__(info)
        self.normalizer = AffineNormalizer(info.event_shape, per_feature=info.kind == "vector")

    def prepare(self, x_train: Tensor) -> None:
        self.normalizer.fit(x_train)

    def target(self, x: Tensor) -> Tensor:
        shape = x.shape
        return self.normalizer(x.reshape(-1, *self.info.event_shape)).reshape(shape)

    def from_target(self, target: Tensor) -> Tensor:
        shape = target.shape
        return self.normalizer.inverse(target.reshape(-1, *self.info.event_shape)).reshape(shape)

    @property
    def log_jacobian(self) -> Tensor:
        return self.normalizer.log_abs_det_jacobian()


class GaussianLikelihood(_StandardizedLikelihood):
    r""":math:`\mathcal N(\mu_\theta, \sigma^2)` on standardised data :math:`(x - m)/s`.

    ``std=None`` learns one :math:`\log\sigma_d` per coordinate (independent of :math:`z`, as in
    factor analysis, which contains probabilistic PCA); a number fixes :math:`\sigma` (in
    standardised units). Log-Jacobian :math:`-\sum_d \log s_d` (the normaliser's).
    """

    def __init__(self, info: DataInfo, std: float | None) -> None:
        super().__init__(info)
        if std is None:
            self.log_std = nn.Parameter(torch.zeros(info.n_features))
        else:
            self.register_buffer("log_std", torch.full((info.n_features,), math.log(std)))

    def distribution(self, params: Tensor) -> Distribution:
        return Independent(Normal(params[..., 0, :], self.log_std.exp(), validate_args=False), 1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        loc = params[..., 0, :]
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return self.from_target(loc + self.log_std.exp() * eps)


class GaussianMixtureLikelihood(_StandardizedLikelihood):
    r"""A mixture of :math:`K` Gaussians per coordinate, on standardised data :math:`(x - m)/s`.

    .. math::
        p(t) = \sum_{k=1}^K \pi_k\, \mathcal N(t; \mu_k, \sigma_k^2), \qquad
        \pi = \mathrm{softmax}(a), \quad \log\sigma_k \ge -7,

    parameters :math:`(a, \mu, \log\sigma)` from the network (``n_params = 3K``);
    log-Jacobian :math:`-\sum_d \log s_d` (the normaliser's). The continuous conditionals of
    an autoregressive model of real-valued data (MADE-MoG, Papamakarios et al., 2017).
    """

    def __init__(self, info: DataInfo, components: int) -> None:
        super().__init__(info)
        check(components >= 1, f"components must be >= 1, got {components}")
        self.components = components
        self.n_params = 3 * components

    def distribution(self, params: Tensor) -> Distribution:
        logits, loc, log_scale = _mixture_parts(params, self.components)
        mixture = MixtureSameFamily(
            Categorical(logits=logits, validate_args=False),
            Normal(loc, log_scale.clamp_min(MIN_LOG_SCALE).exp(), validate_args=False),
            validate_args=False,
        )
        return Independent(mixture, 1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        logits, loc, log_scale = _mixture_parts(params, self.components)
        k = _gumbel_argmax(logits, generator)
        loc, log_scale = loc.gather(-1, k).squeeze(-1), log_scale.gather(-1, k).squeeze(-1)
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return self.from_target(loc + log_scale.clamp_min(MIN_LOG_SCALE).exp() * eps)


def make_likelihood(
    name: str, info: DataInfo, gaussian_std: float | None = None, components: int = 5
) -> Likelihood:
    """The likelihood called ``name`` (one of :data:`LIKELIHOODS`) for data described by ``info``;
    ``components`` is the :math:`K` of the mixtures."""
    if name == "gaussian":
        return GaussianLikelihood(info, gaussian_std)
    if name == "gaussian_mixture":
        return GaussianMixtureLikelihood(info, components)
    if name == "discretized_logistic_mixture":
        return DiscretizedLogisticMixtureLikelihood(info, components)
    if name == "continuous_bernoulli":
        return ContinuousBernoulliLikelihood(info)
    classes: dict[str, type[_LevelLikelihood]] = {
        "bernoulli": BernoulliLikelihood,
        "discretized_logistic": DiscretizedLogisticLikelihood,
        "categorical": CategoricalLikelihood,
    }
    check(name in classes, f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}")
    return classes[name](info)


def check_decoder_likelihood(likelihood: str, gaussian_std: float | None) -> None:
    """Refuse a decoder likelihood setting that is neither ``"auto"`` nor in
    :data:`LIKELIHOODS`, and a fixed Gaussian std that is not positive (``None`` learns it)."""
    check(
        likelihood == "auto" or likelihood in LIKELIHOODS,
        f"likelihood must be auto or one of {LIKELIHOODS}, got {likelihood!r}",
    )
    check(
        gaussian_std is None or gaussian_std > 0,
        f"gaussian_std must be positive, got {gaussian_std}",
    )


def resolve_decoder_likelihood(name: str, info: DataInfo) -> str:
    """The decoder likelihood ``"auto"`` stands for on this data: ``bernoulli`` for 2-level
    data, ``discretized_logistic`` for up to ``MAX_SUMMED_LEVELS`` levels (8-bit data),
    ``gaussian`` for more levels or continuous data (the latent-variable families: ``vae``,
    ``hvae``, ``vqvae``); other names stand for themselves."""
    if name != "auto":
        return name
    if info.levels == 2:
        return "bernoulli"
    if info.levels is None or info.levels > MAX_SUMMED_LEVELS:
        return "gaussian"
    return "discretized_logistic"
