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
from genlab.objectives.contrastive import (
    CONTRASTIVE_LOSSES,
    ContrastiveLoss,
    contrastive_loss,
    info_nce,
    nt_xent,
    ratio_loss,
)
from genlab.objectives.diffusion import simple_loss
from genlab.objectives.gather import all_gather_with_grad
from genlab.objectives.quantization import codebook_loss, commitment_loss, quantized_bound
from genlab.objectives.reconstruction import mean_squared_error
from genlab.objectives.variational import (
    elbo,
    free_bits_kl,
    iw_bound,
    kl_normal,
    kl_standard_normal,
    log_importance_weights,
    log_standard_normal,
    warmup_weight,
)

__all__ = [
    "ADVERSARIAL_LOSSES",
    "CONTRASTIVE_LOSSES",
    "GAN_LOSSES",
    "AdversarialLoss",
    "ContrastiveLoss",
    "GANLoss",
    "all_gather_with_grad",
    "clip_weights_",
    "codebook_loss",
    "commitment_loss",
    "contrastive_loss",
    "elbo",
    "free_bits_kl",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "info_nce",
    "input_gradient_norm",
    "interpolate",
    "iw_bound",
    "kl_normal",
    "kl_standard_normal",
    "log_importance_weights",
    "log_standard_normal",
    "mean_squared_error",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
    "nt_xent",
    "quantized_bound",
    "r1_penalty",
    "ratio_loss",
    "simple_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "warmup_weight",
]
