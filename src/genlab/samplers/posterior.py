r"""Posterior sampling given what is known of x: :math:`p(x \mid o) \propto p(x)\, p(o \mid x)`.

An :class:`Observation` is the log-likelihood :math:`\log p(o_b \mid x)` of what is known of each
of ``rows`` examples:

- :func:`gaussian_measurement`: :math:`y = f(x) + \sigma\varepsilon`, :math:`\varepsilon \sim
  \mathcal N(0, I)`, for an :class:`~genlab.samplers.operators.Operator` :math:`f` (a low-resolution
  copy, a blurred copy, random projections, any differentiable function):
  :math:`\log p(y \mid x) = -\lVert f(x) - y \rVert^2 / (2\sigma^2) + \text{const}`;
- :func:`classifier_guidance`: a class :math:`c` under a classifier,
  :math:`\log p(c \mid x)^{w}` with guidance weight :math:`w` (1: the posterior itself; larger
  values sharpen it, and the result is then no longer :math:`p(x \mid c)`).

A family that generates :math:`x = G(z)`, :math:`z \sim \mathcal N(0, I_K)` (a GAN, a BiGAN, a
flow, a VAE's decoder mean) hands :func:`sample_latent_posterior` its generator
(:class:`LatentGenerator`); the chains then target

.. math::
    p(z \mid o) \propto \mathcal N(z; 0, I)\, p(o \mid G(z))

by sampling-importance-resampling from the prior and MALA
(:func:`~genlab.samplers.latent.latent_posterior`), and return :math:`G(z)`: exact at
stationarity for the stated model, :math:`x = G(z)`. For a VAE that model is its decoder mean,
whose own observation noise the measurement noise :math:`\sigma` stands in for; a flow's
:math:`G` is its exact inverse, so there the model is the flow itself.

References:
    Bora, Jalal, Price & Dimakis, "Compressed Sensing using Generative Models", ICML 2017,
    arXiv:1703.03208.
    Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021,
    arXiv:2105.05233 (classifier guidance).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import DataError
from genlab.objectives import log_standard_normal
from genlab.samplers.latent import latent_posterior
from genlab.samplers.operators import Operator

DECODE_CHUNK = 128  # codes decoded at a time when scoring posterior candidates

# (x (N, *event_shape), rows (N,) long: which observation each x is scored against) -> (N,)
ObservationLogLikelihood = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Observation:
    """What is known of each of ``rows`` examples, as :math:`\\log p(o_b \\mid x)`.

    Attributes:
        rows: how many examples the observation describes.
        log_likelihood: ``(x (N, *event_shape), rows (N,))`` -> ``(N,)``, differentiable in x.
        description: one line for pictures and logs.
    """

    rows: int
    log_likelihood: ObservationLogLikelihood
    description: str

    def widened(self, variance: float) -> Observation:
        """The observation of an :math:`x` known only up to noise of ``variance`` per measurement
        (a sampler's stand-in for :math:`p(o \\mid x_t)`): a Gaussian measurement widens its
        noise; any other observation is unchanged."""
        check(variance >= 0, f"the added variance must be >= 0, got {variance}")
        return self


@dataclass(frozen=True)
class GaussianMeasurement(Observation):
    """:math:`y = f(x) + \\sigma \\varepsilon`; closed-form posteriors read its parts."""

    operator: Operator
    y: Tensor
    noise_std: float

    def widened(self, variance: float) -> GaussianMeasurement:
        r""":math:`y = f(x) + \sqrt{\sigma^2 + v}\,\varepsilon`: the measurement of an :math:`x`
        known up to independent noise of variance :math:`v` on each measurement."""
        check(variance >= 0, f"the added variance must be >= 0, got {variance}")
        return gaussian_measurement(self.operator, self.y, math.sqrt(self.noise_std**2 + variance))


def gaussian_measurement(operator: Operator, y: Tensor, noise_std: float) -> GaussianMeasurement:
    r"""The observation :math:`y = f(x) + \sigma\varepsilon` of ``len(y)`` examples.

    .. math::
        \log p(y_b \mid x) = -\frac{\lVert f(x) - y_b \rVert^2}{2\sigma^2}
        - \frac M2 \log(2\pi\sigma^2).

    Arguments:
        operator: :math:`f`, data ``(B, *event_shape)`` -> ``(B, M)``.
        y: ``(rows, M)`` measurements.
        noise_std: :math:`\sigma > 0`, in the units of ``y``.
    """
    check(noise_std > 0, f"noise_std must be positive, got {noise_std}")
    if y.dim() != 2:
        raise DataError(f"measurements y must be (rows, M), got shape {tuple(y.shape)}")
    m = y.shape[1]
    constant = -0.5 * m * math.log(2 * math.pi * noise_std**2)

    def log_likelihood(x: Tensor, rows: Tensor) -> Tensor:
        fx = operator(x)
        if fx.shape[1] != m:
            raise DataError(f"{operator.spec} gives {fx.shape[1]} measurements, y has {m}")
        target = y.to(fx.device, fx.dtype)[rows]
        return -0.5 * ((fx - target) / noise_std).square().sum(1) + constant

    return GaussianMeasurement(
        rows=len(y),
        log_likelihood=log_likelihood,
        description=f"{operator.spec} + N(0, {noise_std:g}^2)",
        operator=operator,
        y=y,
        noise_std=noise_std,
    )


def classifier_guidance(
    log_probs: Callable[[Tensor], Tensor], classes: Tensor, weight: float = 1.0
) -> Observation:
    r"""The observation "x is of class :math:`c_b`", :math:`w \log p(c_b \mid x)`.

    Arguments:
        log_probs: a classifier, data ``(N, *event_shape)`` -> ``(N, C)`` log-probabilities,
            differentiable in its input.
        classes: ``(rows,)`` long, the class asked of each example.
        weight: :math:`w`; 1 targets :math:`p(x \mid c)` under the classifier.
    """
    check(weight > 0, f"the guidance weight must be positive, got {weight}")

    def log_likelihood(x: Tensor, rows: Tensor) -> Tensor:
        wanted = classes.to(x.device)[rows]
        return weight * log_probs(x).gather(1, wanted[:, None]).squeeze(1)

    return Observation(len(classes), log_likelihood, f"class guidance (weight {weight:g})")


@dataclass(frozen=True)
class LatentGenerator:
    r""":math:`x = G(z)`, :math:`z \sim p(z)` (:math:`\mathcal N(0, I_K)` unless ``log_prior``
    says otherwise): what :func:`sample_latent_posterior` needs.

    Attributes:
        latent_dim: :math:`K`.
        generate: ``(codes (N, K), rows (N,))`` -> data ``(N, *event_shape)`` in data units,
            differentiable in the codes; ``rows`` says which example each code is drawn for
            (a family that takes context reads that example's context from it).
        device: where the codes live.
        log_prior: codes ``(*batch, K)`` -> ``(*batch)`` :math:`\log p(z)` when the prior is
            not :math:`\mathcal N(0, I_K)` (a fitted code prior), differentiable.
    """

    latent_dim: int
    generate: Callable[[Tensor, Tensor], Tensor]
    device: torch.device
    log_prior: Callable[[Tensor], Tensor] = log_standard_normal


def sample_latent_posterior(
    generator: LatentGenerator,
    observation: Observation,
    n: int,
    *,
    steps: int = 300,
    n_candidates: int = 64,
    rng: torch.Generator | None = None,
) -> Tensor:
    """``(n, rows, *event_shape)`` draws of :math:`G(z)`, :math:`z \\sim p(z \\mid o)` (module doc).

    Arguments:
        generator: the family's :math:`G`.
        observation: what is known of each example.
        n: draws per example (independent chains, sharing their example's SIR candidates).
        steps: MALA transitions per chain; the first half adapt the step size.
        n_candidates: SIR candidates per chain, drawn from the (widened) prior.
        rng: the random generator.
    """
    check(n >= 1, f"n (draws per example) must be >= 1, got {n}")
    check(steps >= 1, f"steps must be >= 1, got {steps}")
    check(n_candidates >= 1, f"n_candidates must be >= 1, got {n_candidates}")
    k, rows = generator.latent_dim, observation.rows
    row_of_chain = torch.arange(rows, device=generator.device).repeat(n)  # chain i * R + r

    def log_likelihood(z: Tensor) -> Tensor:  # (chains, S, K) -> (chains, S)
        chains, s = z.shape[:2]
        row = row_of_chain.repeat_interleave(s)
        # decoded in chunks: a decoder's outputs (every level of every pixel, for a discrete
        # likelihood) for all chains x candidates at once can take gigabytes
        values = [
            observation.log_likelihood(generator.generate(z_chunk, row_chunk), row_chunk)
            for z_chunk, row_chunk in zip(
                z.reshape(-1, k).split(DECODE_CHUNK), row.split(DECODE_CHUNK), strict=True
            )
        ]
        return torch.cat(values).view(chains, s)

    loc = torch.zeros(n * rows, k, device=generator.device)
    z, _ = latent_posterior(
        log_likelihood,
        loc,
        torch.ones_like(loc),
        n_candidates=n_candidates,
        steps=steps,
        burn_in=steps // 2,
        pool=n,
        generator=rng,
        log_prior=generator.log_prior,
    )
    with torch.no_grad():
        x = generator.generate(z, row_of_chain)
    return x.view(n, rows, *x.shape[1:])
