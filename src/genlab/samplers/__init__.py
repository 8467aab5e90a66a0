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
- :mod:`~genlab.samplers.schedules`: the forward process of diffusion models (noise schedules,
  the timesteps samplers visit, importance sampling of training timesteps);
- :mod:`~genlab.samplers.diffusion`: their reverse process (:class:`ReverseProcess`, handed by
  the family): the variational bound, DDPM, DDIM and its inversion, completion by replacement
  and by SMC (:mod:`~genlab.samplers.smc`: effective sample size, systematic resampling).
"""

from genlab.samplers.completion import Fill, broadcast_mask, complete
from genlab.samplers.density import ExplicitDensity, complete_from_density
from genlab.samplers.diffusion import Denoised, ReverseProcess
from genlab.samplers.gaussian import gaussian_conditional
from genlab.samplers.latent import (
    LATENT_METHODS,
    LatentMethod,
    LatentVariableModel,
    complete_from_latent,
    latent_posterior,
    metropolis_within_gibbs,
)
from genlab.samplers.mcmc import mala, sir, sir_mala

__all__ = [
    "LATENT_METHODS",
    "Denoised",
    "ExplicitDensity",
    "Fill",
    "LatentMethod",
    "LatentVariableModel",
    "ReverseProcess",
    "broadcast_mask",
    "complete",
    "complete_from_density",
    "complete_from_latent",
    "gaussian_conditional",
    "latent_posterior",
    "mala",
    "metropolis_within_gibbs",
    "sir",
    "sir_mala",
]
