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
- :mod:`~genlab.samplers.autoregressive`: ancestral sampling in an ordering (MADE, PixelCNN) and
  token by token with a state such as a key/value cache (sequence models), and exact completion
  of an observed prefix.
"""

from genlab.samplers.autoregressive import (
    TokenStep,
    draw_categorical,
    prefix_length,
    sample_in_order,
    sample_tokens,
)
from genlab.samplers.completion import Fill, broadcast_mask, complete
from genlab.samplers.density import ExplicitDensity, complete_from_density
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
    "ExplicitDensity",
    "Fill",
    "LatentMethod",
    "LatentVariableModel",
    "TokenStep",
    "broadcast_mask",
    "complete",
    "complete_from_density",
    "complete_from_latent",
    "draw_categorical",
    "gaussian_conditional",
    "latent_posterior",
    "mala",
    "metropolis_within_gibbs",
    "prefix_length",
    "sample_in_order",
    "sample_tokens",
    "sir",
    "sir_mala",
]
