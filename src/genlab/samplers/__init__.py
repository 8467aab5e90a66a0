"""Iterative inference shared by the families: families supply likelihood pieces, samplers iterate.

- :mod:`~genlab.samplers.mcmc`: sampling-importance-resampling and MALA on batches of chains;
- :mod:`~genlab.samplers.completion`: masks and :func:`complete`, which hands a sampler one mask
  pattern at a time and keeps the observed values;
- :mod:`~genlab.samplers.gaussian`: the Gaussian conditional (exact for PPCA, a proposal shape
  for the rest);
- :mod:`~genlab.samplers.latent`: completion through a latent code
  (:class:`LatentVariableModel`: VAE, GAN, BiGAN) by SIR + MALA or Metropolis-within-Gibbs;
- :mod:`~genlab.samplers.density`: completion with an exact density (:class:`ExplicitDensity`:
  flows) by SIR + MALA on the unobserved coordinates;
- :mod:`~genlab.samplers.operators`: measurements y = f(x) (mask, downsampling, blur, random
  projections, any function);
- :mod:`~genlab.samplers.posterior`: posterior sampling given a measurement or a class
  (:class:`Observation`) through a generator's code (:class:`LatentGenerator`);
- :mod:`~genlab.samplers.autoregressive`: ancestral sampling in an ordering (MADE, PixelCNN) and
  token by token with a state such as a key/value cache (sequence models), and exact completion
  of an observed prefix.
- :mod:`~genlab.samplers.schedules`: the forward process of diffusion models (noise schedules,
  the timesteps samplers visit, importance sampling of training timesteps);
- :mod:`~genlab.samplers.diffusion`: their reverse process (:class:`ReverseProcess`, handed by
  the family): the variational bound, DDPM, DDIM and its inversion, completion by replacement
  and by SMC (:mod:`~genlab.samplers.smc`: effective sample size, systematic resampling), and
  posterior sampling given an :class:`Observation` by twisted SMC and by DPS.
"""

from genlab.samplers.autoregressive import (
    TokenStep,
    draw_categorical,
    prefix_length,
    sample_in_order,
    sample_tokens,
)
from genlab.samplers.completion import Fill, broadcast_mask, complete, top_half_mask
from genlab.samplers.density import ExplicitDensity, complete_from_density
from genlab.samplers.diffusion import Denoised, ReverseProcess
from genlab.samplers.gaussian import gaussian_conditional, gaussian_posterior
from genlab.samplers.latent import (
    LATENT_METHODS,
    LatentMethod,
    LatentVariableModel,
    complete_from_latent,
    latent_posterior,
    metropolis_within_gibbs,
)
from genlab.samplers.mcmc import mala, recording_sampler_warnings, sir, sir_mala
from genlab.samplers.operators import (
    Blur,
    Downsample,
    Function,
    Mask,
    Operator,
    Projection,
    parse_operator,
)
from genlab.samplers.posterior import (
    GaussianMeasurement,
    LatentGenerator,
    Observation,
    classifier_guidance,
    gaussian_measurement,
    sample_latent_posterior,
)

__all__ = [
    "LATENT_METHODS",
    "Denoised",
    "Blur",
    "Downsample",
    "ExplicitDensity",
    "Fill",
    "Function",
    "GaussianMeasurement",
    "LatentGenerator",
    "LatentMethod",
    "LatentVariableModel",
    "ReverseProcess",
    "Mask",
    "Observation",
    "Operator",
    "Projection",
    "TokenStep",
    "broadcast_mask",
    "classifier_guidance",
    "complete",
    "complete_from_density",
    "complete_from_latent",
    "draw_categorical",
    "gaussian_conditional",
    "gaussian_measurement",
    "gaussian_posterior",
    "latent_posterior",
    "mala",
    "metropolis_within_gibbs",
    "parse_operator",
    "recording_sampler_warnings",
    "sample_latent_posterior",
    "prefix_length",
    "sample_in_order",
    "sample_tokens",
    "sir",
    "sir_mala",
    "top_half_mask",
]
