r"""Integral probability metrics with a learned critic.

.. math::
    d_{\mathcal F}(P, Q) = \sup_{f\in\mathcal F}\ \mathbb E_P f(X) - \mathbb E_Q f(Y).

The critic :math:`f` (an MLP) is trained by Adam to maximise the difference on one half of
each sample and evaluated on the other half, so the reported ``estimate`` is an unbiased
estimate of :math:`\mathbb E_P f - \mathbb E_Q f` for a fixed :math:`f \in \mathcal F`, hence
(up to sampling noise) a *lower bound* on :math:`d_{\mathcal F}`. Function classes:

- ``"bounded"``: :math:`f = \sigma(\mathrm{MLP}) \in [0, 1]`; then
  :math:`d_{\mathcal F} \le \sup_{0\le f\le1} = \mathrm{TV}(P, Q)`, with equality for
  :math:`f = 1\{p > q\}`: a lower bound on total variation.
- ``"lipschitz"``: :math:`f` = MLP with the two-sided gradient penalty
  :math:`\lambda\,\mathbb E_{\hat x}(\|\nabla f(\hat x)\|-1)^2` at random interpolates
  :math:`\hat x = t x + (1-t) y` (Gulrajani et al. 2017): by Kantorovich-Rubinstein duality,
  :math:`\sup_{\|f\|_L\le1} = W_1(P, Q)`, so this estimates :math:`W_1` (the penalty only
  approximately enforces the constraint).
- ``"neural_net"``: the "neural net distance" of Arora et al. (2017): :math:`\mathcal F` =
  MLPs with every parameter in :math:`[-c, c]` (projected by clipping after each step, as in
  WGAN), the class whose distance generalises from samples.

References:
    Muller, "Integral probability metrics and their generating classes of functions", 1997.
    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017, arXiv:1701.07875.
    Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017, arXiv:1704.00028.
    Arora et al., "Generalization and equilibrium in GANs", ICML 2017, arXiv:1703.00573.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from genlab.config import check
from genlab.errors import ConfigError
from genlab.nn import MLP
from genlab.optim import adam
from genlab.stats.seeding import build_seeded
from genlab.stats.validation import ArrayLike, as_sample_pair

CriticClass = Literal["bounded", "lipschitz", "neural_net"]
CRITIC_CLASSES: tuple[str, ...] = get_args(CriticClass)


@dataclass(frozen=True)
class IPMResult:
    r"""``estimate``: held-out :math:`\mathbb E_P f - \mathbb E_Q f` of the trained critic;
    ``std_error``: its standard error; ``train_estimate``: the same on the training halves
    (optimistic); ``function_class``: which :math:`\mathcal F`."""

    estimate: float
    std_error: float
    train_estimate: float
    function_class: str


@torch.enable_grad()  # trains a critic even when called under no_grad
def critic_ipm(
    x: ArrayLike,
    y: ArrayLike,
    function_class: CriticClass = "bounded",
    *,
    hidden: tuple[int, ...] = (64, 64),
    steps: int = 500,
    lr: float = 1e-3,
    gp_weight: float = 10.0,
    weight_clip: float = 0.1,
    generator: torch.Generator | None = None,
) -> IPMResult:
    r"""Estimate :math:`d_{\mathcal F}(P, Q)` by training a critic (module docstring).

    Arguments:
        x, y: ``(n, d)``, ``(m, d)`` samples (at least 4 each); halves train, halves evaluate.
        function_class: ``"bounded"``, ``"lipschitz"`` or ``"neural_net"``.
        hidden: critic MLP hidden sizes.
        steps: full-batch Adam steps.
        gp_weight: :math:`\lambda` of the gradient penalty (``"lipschitz"``).
        weight_clip: :math:`c` of the parameter box (``"neural_net"``).
        generator: seeds the split, the critic's initial weights and the interpolates.
    """
    if function_class not in CRITIC_CLASSES:
        raise ConfigError(
            f"unknown critic class {function_class!r}; choose one of {', '.join(CRITIC_CLASSES)}"
        )
    check(steps >= 1, f"steps must be positive, got {steps}")
    a, b = as_sample_pair(x, y, min_rows=4)
    a = a[torch.randperm(len(a), generator=generator).to(a.device)].float()
    b = b[torch.randperm(len(b), generator=generator).to(b.device)].float()
    a_train, a_test = a[: len(a) // 2], a[len(a) // 2 :]
    b_train, b_test = b[: len(b) // 2], b[len(b) // 2 :]
    critic = build_seeded(lambda: MLP(a.shape[1], 1, hidden, activation="leaky_relu"), generator)
    critic = critic.to(a.device)
    bounded = function_class == "bounded"

    def f(z: Tensor) -> Tensor:
        out = critic(z)[:, 0]
        return torch.sigmoid(out) if bounded else out

    optimizer = adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    size = min(len(a_train), len(b_train))
    for _ in range(steps):
        loss = -(f(a_train).mean() - f(b_train).mean())
        if function_class == "lipschitz":
            t = torch.rand(size, 1, generator=generator).to(a.device)
            pick_a = torch.randperm(len(a_train), generator=generator)[:size].to(a.device)
            pick_b = torch.randperm(len(b_train), generator=generator)[:size].to(a.device)
            between = (t * a_train[pick_a] + (1 - t) * b_train[pick_b]).requires_grad_(True)
            (grad,) = torch.autograd.grad(f(between).sum(), between, create_graph=True)
            loss = loss + gp_weight * (grad.norm(dim=1) - 1).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if function_class == "neural_net":
            with torch.no_grad():
                for parameter in critic.parameters():
                    parameter.clamp_(-weight_clip, weight_clip)
    with torch.no_grad():
        fa, fb = f(a_test).double(), f(b_test).double()
        train_estimate = float(f(a_train).mean() - f(b_train).mean())
    variance = fa.var() / len(fa) + fb.var() / len(fb)
    return IPMResult(
        float(fa.mean() - fb.mean()), float(variance.sqrt()), train_estimate, function_class
    )
