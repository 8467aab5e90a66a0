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
from torch import Tensor, nn

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


class Critic(nn.Module):
    r"""A critic :math:`f: \mathbb R^d \to \mathbb R` of one of the classes of the module docstring.

    ``(n, d) -> (n,)``: the MLP's output, squashed by a sigmoid into :math:`[0, 1]` for the
    ``"bounded"`` class.
    """

    def __init__(self, net: nn.Module, bounded: bool) -> None:
        super().__init__()
        self.net = net
        self.bounded = bounded

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)[:, 0]
        return torch.sigmoid(out) if self.bounded else out


@torch.enable_grad()  # trains a critic even when called under no_grad
def train_critic(
    x: Tensor,
    y: Tensor,
    function_class: CriticClass = "bounded",
    *,
    hidden: tuple[int, ...] = (64, 64),
    steps: int = 500,
    lr: float = 1e-3,
    gp_weight: float = 10.0,
    weight_clip: float = 0.1,
    generator: torch.Generator | None = None,
) -> Critic:
    r"""The critic :math:`f \in \mathcal F` that full-batch Adam finds for
    :math:`\max_f \frac1n\sum_i f(x_i) - \frac1m\sum_j f(y_j)` on these two samples.

    Arguments:
        x, y: ``(n, d)``, ``(m, d)`` float32 samples, both on the same device.
        function_class: ``"bounded"``, ``"lipschitz"`` or ``"neural_net"`` (module docstring).
        hidden: critic MLP hidden sizes.
        steps: full-batch Adam steps.
        gp_weight: :math:`\lambda` of the gradient penalty (``"lipschitz"``).
        weight_clip: :math:`c` of the parameter box (``"neural_net"``).
        generator: seeds the critic's initial weights and the interpolates.

    Returns:
        the trained critic (evaluate it under ``torch.no_grad()``).
    """
    if function_class not in CRITIC_CLASSES:
        raise ConfigError(
            f"unknown critic class {function_class!r}; choose one of {', '.join(CRITIC_CLASSES)}"
        )
    check(steps >= 1, f"steps must be positive, got {steps}")
    net = build_seeded(lambda: MLP(x.shape[1], 1, hidden, activation="leaky_relu"), generator)
    f = Critic(net, function_class == "bounded").to(x.device)
    optimizer = adam(f.parameters(), lr=lr, betas=(0.5, 0.9))
    size = min(len(x), len(y))
    for _ in range(steps):
        loss = -(f(x).mean() - f(y).mean())
        if function_class == "lipschitz":
            t = torch.rand(size, 1, generator=generator).to(x.device)
            pick_x = torch.randperm(len(x), generator=generator)[:size].to(x.device)
            pick_y = torch.randperm(len(y), generator=generator)[:size].to(x.device)
            between = (t * x[pick_x] + (1 - t) * y[pick_y]).requires_grad_(True)
            (grad,) = torch.autograd.grad(f(between).sum(), between, create_graph=True)
            loss = loss + gp_weight * (grad.norm(dim=1) - 1).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if function_class == "neural_net":
            with torch.no_grad():
                for parameter in f.parameters():
                    parameter.clamp_(-weight_clip, weight_clip)
    return f


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
        hidden, steps, lr, gp_weight, weight_clip: as in :func:`train_critic`.
        generator: seeds the split, the critic's initial weights and the interpolates.
    """
    a, b = as_sample_pair(x, y, min_rows=4)
    a = a[torch.randperm(len(a), generator=generator).to(a.device)].float()
    b = b[torch.randperm(len(b), generator=generator).to(b.device)].float()
    a_train, a_test = a[: len(a) // 2], a[len(a) // 2 :]
    b_train, b_test = b[: len(b) // 2], b[len(b) // 2 :]
    f = train_critic(
        a_train, b_train, function_class, hidden=hidden, steps=steps, lr=lr,
        gp_weight=gp_weight, weight_clip=weight_clip, generator=generator,
    )  # fmt: skip
    with torch.no_grad():
        fa, fb = f(a_test).double(), f(b_test).double()
        train_estimate = float(f(a_train).mean() - f(b_train).mean())
    variance = fa.var() / len(fa) + fb.var() / len(fb)
    return IPMResult(
        float(fa.mean() - fb.mean()), float(variance.sqrt()), train_estimate, function_class
    )
