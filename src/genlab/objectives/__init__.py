"""Losses as plain functions of tensors and distributions, each with its formula."""

from genlab.objectives.adversarial import (
    ADVERSARIAL_LOSSES,
    GAN_LOSSES,
    AdversarialLoss,
    GANLoss,
    clip_weights_,
    gradient_penalty,
    hinge_discriminator_loss,
    input_gradient_norm,
    interpolate,
    minimax_discriminator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    r1_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from genlab.objectives.reconstruction import mean_squared_error

__all__ = [
    "ADVERSARIAL_LOSSES",
    "GAN_LOSSES",
    "AdversarialLoss",
    "GANLoss",
    "clip_weights_",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "input_gradient_norm",
    "interpolate",
    "mean_squared_error",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
    "r1_penalty",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]
