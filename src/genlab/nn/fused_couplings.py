r"""A stack of affine couplings with ReLU MLP conditioners as one autograd node, backward by hand.

A training step of a flow on vectors is hundreds of small operators (8 couplings of 64-64 MLPs on
2-D data: 48 matrix products and about 300 elementwise ones), and on a CPU the cost of each,
not the arithmetic, sets the step's time. :func:`fused_affine_couplings` computes exactly what
the layers compute one by one (:class:`~genlab.nn.flows.AffineCoupling`,
:func:`~genlab.nn.affine.affine_transform`), without recording a graph, and its backward is
written out, coupling by coupling in reverse: with :math:`m` the conditioning mask,
:math:`f = 1 - m`, :math:`s = f \odot c \tanh(\tilde s / c)`, :math:`z = x \odot e^{s} + f \odot
t` and :math:`\ell = \sum_d s_d`, given :math:`\bar z = \partial L / \partial z` and
:math:`\bar\ell = \partial L / \partial \ell`,

.. math::
    \bar{\tilde s} = f \odot (1 - \tanh^2(\tilde s / c)) \odot (\bar z \odot x \odot e^{s} +
    \bar\ell), \qquad \bar t = f \odot \bar z, \qquad
    \bar x = \bar z \odot e^{s} + m \odot \bar u,

where :math:`\bar u` is the gradient that flows back through the conditioner
:math:`(\tilde s, t) = \mathrm{MLP}(m \odot x)` to its input :math:`u = m \odot x`; each linear
layer :math:`h' = h W^\top + b` gives :math:`\bar W = \bar h'^\top h`, :math:`\bar b = \sum_B
\bar h'`, :math:`\bar h = \bar h' W`, and each ReLU passes :math:`\bar h'` where :math:`h' > 0`.

Products with an output of a few columns (the conditioner's first layer has ``D`` inputs, its last
``2 D`` outputs, and ``D`` is 2 on the plane) are computed transposed, :math:`(B^\top
A^\top)^\top` (:func:`narrow_matmul`): the CPU's matrix library takes several times longer for
an output of 2 or 4 columns and 512 rows than for its transpose. The numbers equal the layers'
own up to float rounding (tests compare values and gradients, and ``gradcheck`` in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.nn.affine import soft_clamp

# an output with fewer columns than this is computed as the transpose of the transposed product
NARROW_COLUMNS = 16


def narrow_matmul(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    r""":math:`a b` (plus ``bias``, broadcast over rows), as :math:`(b^\top a^\top)^\top` when the
    output has fewer than :data:`NARROW_COLUMNS` columns and more rows than columns."""
    rows, columns = a.shape[0], b.shape[1]
    if columns < NARROW_COLUMNS and rows > columns:
        if bias is None:
            return (b.t() @ a.t()).t()
        return torch.addmm(bias.unsqueeze(1), b.t(), a.t()).t()
    return a @ b if bias is None else torch.addmm(bias, a, b)


@dataclass(frozen=True)
class FusedCoupling:
    """What :func:`fused_affine_couplings` needs of one coupling: its ``(1, D)`` 0/1 masks (``mask``
    conditions, ``free`` is transformed), the soft clamp's bound :math:`c`, and the linear
    layers of its ReLU conditioner (``D -> ... -> 2 D``)."""

    mask: Tensor
    free: Tensor
    bound: float
    linears: Sequence[nn.Linear]


class _AffineCouplings(torch.autograd.Function):
    """Forward: the couplings in order; backward: the formulas of the module docstring.

    The activations are kept on ``ctx`` (a nested structure ``save_for_backward`` does not take),
    so an in-place change of the input between forward and backward goes unnoticed: the trainer
    never makes one."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        couplings: Sequence[FusedCoupling],
        *parameters: Tensor,
    ) -> tuple[Tensor, Tensor]:
        saved, log_dets = [], []
        weights = iter(parameters)
        for coupling in couplings:
            layers = [(next(weights), next(weights)) for _ in coupling.linears]
            h = x * coupling.mask
            inputs = [h]  # each linear layer's input, ReLU applied
            for weight, bias in layers[:-1]:
                h = narrow_matmul(h, weight.t(), bias).relu_()
                inputs.append(h)
            raw_scale, shift = narrow_matmul(h, layers[-1][0].t(), layers[-1][1]).chunk(2, 1)
            scale = soft_clamp(raw_scale, coupling.bound).mul_(coupling.free)
            exp_scale = torch.exp(scale)
            log_dets.append(scale.sum(1))
            saved.append((x, inputs, scale, exp_scale, layers))
            x = torch.addcmul(shift * coupling.free, x, exp_scale)
        ctx.saved = saved  # type: ignore[attr-defined]
        ctx.couplings = couplings  # type: ignore[attr-defined]
        return x, torch.stack(log_dets).sum(0)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_z: Tensor, grad_log_det: Tensor
    ) -> tuple[Tensor | None, ...]:
        grads: list[list[Tensor]] = []
        grad_log_det = grad_log_det.unsqueeze(1)
        grad = grad_z
        for index in reversed(range(len(ctx.couplings))):  # type: ignore[attr-defined]
            coupling = ctx.couplings[index]  # type: ignore[attr-defined]
            x, inputs, scale, exp_scale, layers = ctx.saved[index]  # type: ignore[attr-defined]
            grad_x = grad * exp_scale
            # ds/ds~ = f (1 - tanh^2) = f - (s / c)^2, as s = f c tanh(s~ / c) with f in {0, 1}
            slope = torch.addcmul(coupling.free, scale, scale, value=-1.0 / coupling.bound**2)
            grad_raw = torch.addcmul(grad_log_det, grad_x, x).mul_(slope)
            grad_h = torch.cat([grad_raw, grad * coupling.free], 1)
            layer_grads: list[Tensor] = []
            for depth in reversed(range(len(layers))):
                weight = layers[depth][0]
                h = inputs[depth]
                layer_grads = [narrow_matmul(grad_h.t(), h), grad_h.sum(0), *layer_grads]
                if depth > 0:
                    grad_h = torch.ops.aten.threshold_backward(grad_h @ weight, h, 0)
                elif index > 0 or ctx.needs_input_grad[0]:
                    grad_x = torch.addcmul(grad_x, narrow_matmul(grad_h, weight), coupling.mask)
            grads.append(layer_grads)
            grad = grad_x
        flat = [g for layer_grads in reversed(grads) for g in layer_grads]
        return (grad if ctx.needs_input_grad[0] else None, None, *flat)


def fused_affine_couplings(x: Tensor, couplings: Sequence[FusedCoupling]) -> tuple[Tensor, Tensor]:
    """``(z, log_det)`` of the couplings applied in order to ``(B, D)`` inputs ``x``: the same
    numbers as the layers one by one, in one autograd node (module docstring)."""
    parameters = [
        p for c in couplings for linear in c.linears for p in (linear.weight, linear.bias)
    ]
    return _AffineCouplings.apply(x, couplings, *parameters)


__all__ = ["NARROW_COLUMNS", "FusedCoupling", "fused_affine_couplings", "narrow_matmul"]
