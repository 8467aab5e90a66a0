r"""The adversarial game's losses, its Lipschitz constraints and its regularisers.

A discriminator (critic) :math:`D` outputs one real number per example: a *logit* for the
probability losses (:math:`D(x) = \sigma(\ell(x))` is the probability that :math:`x` is real) and
the critic's value itself for the Wasserstein and hinge losses. Every loss here takes those raw
outputs ``real`` (on data, shape ``(batch,)``) and ``fake`` (on generated samples, shape
``(batch,)``) and returns the scalar mean that the player *minimises*:

=================  =====================================================  ======================================
loss               discriminator / critic minimises                       generator minimises
=================  =====================================================  ======================================
``minimax``        :math:`-\mathbb E\log D(x) - \mathbb E\log(1-D(G(z)))`  :math:`\mathbb E\log(1 - D(G(z)))`
``nonsaturating``  (the same)                                             :math:`-\mathbb E\log D(G(z))`
``wasserstein``    :math:`\mathbb E f(G(z)) - \mathbb E f(x)`             :math:`-\mathbb E f(G(z))`
``hinge``          :math:`\mathbb E[1 - f(x)]_+ + \mathbb E[1 + f(G(z))]_+`  :math:`-\mathbb E f(G(z))`
=================  =====================================================  ======================================

The logs are computed stably from logits: :math:`-\log\sigma(\ell) = \operatorname{softplus}(-\ell)`
and :math:`-\log(1-\sigma(\ell)) = \operatorname{softplus}(\ell)`.

Every discriminator loss is unchanged by the swap :math:`(\text{real}, \text{fake}) \to
(-\text{fake}, -\text{real})`, so a player that wants its *real* pairs taken for fakes (the
encoder of BiGAN) minimises ``generator(-real)``.

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, arXiv:1406.2661.
    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017, arXiv:1701.07875.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028.
    Lim & Ye, "Geometric GAN", 2017, arXiv:1705.02894 (hinge loss).
    Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually Converge?",
    ICML 2018, arXiv:1801.04406 (R1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GANLoss = Literal["minimax", "nonsaturating", "wasserstein", "wasserstein-gp", "hinge"]
GAN_LOSSES: tuple[str, ...] = get_args(GANLoss)


def minimax_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    r"""Binary cross-entropy of the discriminator, :math:`-\mathbb E\log D(x) - \mathbb E\log(1 - D(G(z)))`.

    Arguments:
        real: ``(batch,)`` logits :math:`\ell(x)` on data.
        fake: ``(batch,)`` logits :math:`\ell(G(z))` on samples.

    Returns:
        The scalar :math:`\mathbb E\operatorname{softplus}(-\ell(x)) +
        \mathbb E\operatorname{softplus}(\ell(G(z)))` (Goodfellow et al., 2014, arXiv:1406.2661).
    """
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_generator_loss(fake: Tensor) -> Tensor:
    r"""The saturating generator loss of the original minimax game, :math:`\mathbb E\log(1 - D(G(z)))`.

    Equal to :math:`-\mathbb E\operatorname{softplus}(\ell(G(z)))`. Its gradient with respect
    to the logit is :math:`-\sigma(\ell)`, which vanishes when the discriminator confidently
    rejects the samples (:math:`\ell \to -\infty`): the generator stops learning exactly
    when it is worst (Goodfellow et al., 2014, Section 3, arXiv:1406.2661).
    """
    return -F.softplus(fake).mean()


def nonsaturating_generator_loss(fake: Tensor) -> Tensor:
    r"""The non-saturating generator loss :math:`-\mathbb E\log D(G(z)) = \mathbb E\operatorname{softplus}(-\ell)`.

    Same fixed points as :func:`minimax_generator_loss`, but its logit gradient
    :math:`-(1 - \sigma(\ell))` is largest when the samples are rejected
    (Goodfellow et al., 2014, arXiv:1406.2661).
    """
    return F.softplus(-fake).mean()


def wasserstein_critic_loss(real: Tensor, fake: Tensor) -> Tensor:
    r"""The negated Kantorovich-Rubinstein objective :math:`\mathbb E f(G(z)) - \mathbb E f(x)`.

    For a 1-Lipschitz critic :math:`f`, :math:`\mathbb E f(x) - \mathbb E f(G(z))` is a lower
    bound on the Wasserstein-1 distance, tight at the optimal critic (Arjovsky et al., 2017,
    arXiv:1701.07875). The Lipschitz constraint is not in the loss: it comes from
    :func:`clip_weights_`, :func:`gradient_penalty` or spectral normalisation.
    """
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake: Tensor) -> Tensor:
    r""":math:`-\mathbb E f(G(z))`, the generator's side of the Wasserstein and hinge games."""
    return -fake.mean()


def hinge_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    r"""Hinge loss :math:`\mathbb E[1 - f(x)]_+ + \mathbb E[1 + f(G(z))]_+` (Lim & Ye, 2017, arXiv:1705.02894)."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


@dataclass(frozen=True)
class AdversarialLoss:
    """One form of the game: what each player minimises.

    Attributes:
        discriminator: ``(real, fake) -> scalar`` minimised by the discriminator.
        generator: ``fake -> scalar`` minimised by the generator.
        probability: whether the outputs are logits of a probability (so
            :math:`\\sigma(\\ell)` is the discriminator's belief that its input is real).
    """

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    probability: bool


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "minimax": AdversarialLoss(minimax_discriminator_loss, minimax_generator_loss, True),
    "nonsaturating": AdversarialLoss(
        minimax_discriminator_loss, nonsaturating_generator_loss, True
    ),
    "wasserstein": AdversarialLoss(wasserstein_critic_loss, wasserstein_generator_loss, False),
    "wasserstein-gp": AdversarialLoss(wasserstein_critic_loss, wasserstein_generator_loss, False),
    "hinge": AdversarialLoss(hinge_discriminator_loss, wasserstein_generator_loss, False),
}


def input_gradient_norm(outputs: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    r"""``(batch,)`` norms :math:`\lVert \nabla_{u} f(u) \rVert_2` of the critic's input gradient.

    Arguments:
        outputs: ``(batch,)`` critic outputs :math:`f(u_i)`, computed from ``inputs`` (which
            must require gradients); a longer ``outputs`` whose first rows belong to
            ``inputs`` works too (the rows of a concatenated batch).
        inputs: the critic's arguments, tensors of shape ``(batch, ...)`` (one for a GAN,
            ``(x, z)`` for BiGAN); the norm is taken over all of them together, i.e. in the
            joint input space.

    The graph is kept (``create_graph=True``) so that a penalty on the norm can be trained
    through. Example rows do not mix, so each row's gradient is its own example's.
    """
    grads = torch.autograd.grad(outputs.sum(), list(inputs), create_graph=True)
    squared = sum(g.flatten(1).square().sum(1) for g in grads)
    return squared.clamp_min(1e-12).sqrt()


def interpolate(
    real: Sequence[Tensor], fake: Sequence[Tensor], generator: torch.Generator | None = None
) -> list[Tensor]:
    r"""Random points on the segments :math:`\hat u = \epsilon u + (1 - \epsilon)\tilde u`, :math:`\epsilon \sim U[0, 1]`.

    One :math:`\epsilon` per example, shared by all of the example's inputs (so ``(x, z)`` pairs
    are interpolated as one point of the joint space). The points require gradients, ready for
    :func:`gradient_penalty`. Gulrajani et al., 2017, Algorithm 1.
    """
    batch = real[0].shape[0]
    eps = torch.rand(batch, generator=generator, device=real[0].device, dtype=real[0].dtype)
    out = []
    for u, v in zip(real, fake, strict=True):
        e = eps.view(batch, *([1] * (u.dim() - 1)))
        out.append((e * u.detach() + (1.0 - e) * v.detach()).requires_grad_(True))
    return out


def gradient_penalty(outputs: Tensor, points: Sequence[Tensor]) -> Tensor:
    r"""WGAN-GP's two-sided penalty :math:`\mathbb E_{\hat u}(\lVert\nabla_{\hat u} f(\hat u)\rVert_2 - 1)^2`.

    Arguments:
        outputs: ``(batch,)`` critic outputs :math:`f(\hat u)` at ``points``.
        points: the inputs they were computed from (requiring gradients), usually
            :func:`interpolate` of real and generated data.

    Multiplied by :math:`\lambda = 10` in the paper; the caller applies the weight.

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017,
        arXiv:1704.00028, Eq. (3).
    """
    return (input_gradient_norm(outputs, points) - 1.0).square().mean()


def r1_penalty(outputs: Tensor, real: Sequence[Tensor]) -> Tensor:
    r"""R1 regulariser :math:`\mathbb E_{x \sim p}\lVert \nabla_x f(x) \rVert_2^2` on real data.

    Arguments:
        outputs: critic outputs whose first ``len(real[0])`` rows are :math:`f(x_i)`.
        real: the data inputs they were computed from (requiring gradients).

    Multiplied by :math:`\gamma / 2` in the paper; the caller applies the weight. It pushes the
    discriminator to be flat on the data manifold, which makes simultaneous gradient play
    locally convergent.

    References:
        Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually Converge?",
        ICML 2018, arXiv:1801.04406, Eq. (9).
    """
    return input_gradient_norm(outputs, real).square().mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, bound: float) -> None:
    r"""Clamp every parameter of ``module`` to :math:`[-c, c]` in place (WGAN's crude Lipschitz constraint).

    The set of critics with weights in a compact box is K-Lipschitz for some K, so the
    Kantorovich-Rubinstein bound holds up to the factor K (Arjovsky et al., 2017,
    arXiv:1701.07875, Algorithm 1, :math:`c = 0.01`).
    """
    for parameter in module.parameters():
        parameter.clamp_(-bound, bound)
