r"""MADE: a masked autoencoder whose output for coordinate :math:`i` sees only the coordinates
before :math:`i` in an ordering (Germain et al., 2015).

Degrees: input :math:`i` has degree :math:`m^0(i) = \mathrm{order}_i \in \{1..D\}`; hidden unit
:math:`k` of layer :math:`l` has a degree :math:`m^l(k) \in \{1..D-1\}`. A hidden connection
exists when the degree does not decrease, :math:`m^l(k) \ge m^{l-1}(k')`, an output connection
when it strictly increases, :math:`\mathrm{order}_i > m^L(k)`; so output :math:`i` depends only
on inputs :math:`j` with :math:`\mathrm{order}_j < \mathrm{order}_i`, and
:math:`\prod_i p(x_i \mid \mathrm{output}_i)` is a normalised autoregressive model.

Hidden degrees are :math:`1 + (k \bmod (D - 1))` by default, or drawn uniformly from
:math:`\{\min_{k'} m^{l-1}(k'), \dots, D - 1\}` (:func:`hidden_degrees` with a generator), the
connectivity-agnostic training of Germain et al.: one network, many masks, each a valid model.

A conditional MADE (:math:`p(x \mid y)`) takes ``context_features`` inputs after the ``D`` data
inputs, of degree 0, so they connect to every hidden unit (to every output without hidden
layers); its hidden degrees then cycle through :math:`0 .. D - 1`: units of degree 0 read the
context alone and feed every output, so that the first coordinate in the order, which reads no
data input, still depends on the context. Every output depends on all of the context and only
on the data inputs before it (zuko's ``MaskedAutoregressiveTransform`` connects the context
likewise).
The flows' MAF layer uses the default degrees; the ``autoregressive`` family trains an ensemble
of (ordering, connectivity) pairs with :meth:`MADE.set_masks`.

References:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
    Estimation", ICML 2015, arXiv:1502.03509.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nn.mlp import ACTIVATIONS


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask ``(out, in)``."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def hidden_degrees(
    d: int,
    sizes: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    context: bool = False,
) -> list[Tensor]:
    r"""Degrees of the hidden units of each layer (module docstring).

    Without a generator: :math:`1 + (k \bmod (D-1))`, or :math:`k \bmod D` with ``context``.
    With one: layer :math:`l` draws each degree uniformly from
    :math:`\{\min m^{l-1}, \dots, D - 1\}` (the inputs' minimum is 1, 0 with ``context``).
    """
    top = max(d - 1, 1)
    degrees, low = [], 0 if context else 1
    for size in sizes:
        if generator is None:
            layer = torch.arange(size) % d if context else torch.arange(size) % top + 1
        else:
            layer = torch.randint(low, top + 1, (size,), generator=generator)
        low = int(layer.min())
        degrees.append(layer)
    return degrees


def made_masks(
    order: Tensor, degrees: Sequence[Tensor], n_outputs: int, context_features: int = 0
) -> list[Tensor]:
    """The ``(out, in)`` masks of every layer, for an ``order`` (a permutation of 1..D), hidden
    ``degrees`` and ``context_features`` inputs of degree 0 after the data inputs; the output
    mask is repeated for ``n_outputs`` blocks."""
    order = order.long()
    inputs = torch.cat([order, order.new_zeros(context_features)])
    chain = [inputs, *(h.to(order.device) for h in degrees)]
    masks = [
        (cur[:, None] >= prev[None, :]).float()
        for prev, cur in zip(chain, chain[1:], strict=False)
    ]
    masks.append((order[:, None] > chain[-1][None, :]).float().repeat(n_outputs, 1))
    return masks


class MADE(nn.Sequential):
    r"""Masked autoencoder: output block :math:`j` of ``n_outputs`` depends only on the inputs
    that come before :math:`j` in ``order`` (see the module docstring for the degrees).

    Arguments:
        order: ``(D,)`` a permutation of 1..D, the autoregressive order of the inputs.
        hidden: hidden layer sizes.
        n_outputs: outputs per input coordinate; the output has shape ``(B, n_outputs * D)``,
            block-major (all first outputs, then all second outputs...).
        activation: the non-linearity between layers.
        dropout: dropout probability after each hidden activation (0: no dropout layer).
        context_features: size of the context after the data inputs: the input is then
            ``(B, D + context_features)``.

    Example:
        >>> made = MADE(torch.tensor([2, 1, 3]), (8,), n_outputs=1)
        >>> made(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        order: Tensor,
        hidden: Sequence[int],
        n_outputs: int,
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        context_features: int = 0,
    ) -> None:
        degrees = hidden_degrees(len(order), hidden, context=context_features > 0)
        masks = made_masks(order, degrees, n_outputs, context_features)
        layers: list[nn.Module] = []
        for mask in masks[:-1]:
            layers += [MaskedLinear(mask), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(MaskedLinear(masks[-1]))
        super().__init__(*layers)

    def masked_layers(self) -> list[MaskedLinear]:
        return [m for m in self if isinstance(m, MaskedLinear)]

    @torch.no_grad()
    def set_masks(self, masks: Sequence[Tensor]) -> None:
        """Use another (ordering, connectivity): ``masks`` from :func:`made_masks`."""
        for layer, mask in zip(self.masked_layers(), masks, strict=True):
            layer.mask.copy_(mask)
