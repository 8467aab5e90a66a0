"""Multi-layer perceptron."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

Activation = Literal["relu", "leaky_relu", "gelu", "silu", "tanh", "elu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


class MLP(nn.Sequential):
    """``in_features -> hidden[0] -> ... -> out_features`` with an activation between layers.

    Arguments:
        in_features: input size.
        out_features: output size (no activation after the last layer).
        hidden: sizes of the hidden layers; empty gives one linear layer.
        activation: a key of :data:`ACTIVATIONS`.
        dropout: dropout probability after each hidden activation (0: no dropout layer, so the
            parameter names are those of a plain MLP).

    Example:
        >>> MLP(3, 2, hidden=(16,))(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (),
        activation: Activation = "relu",
        dropout: float = 0.0,
    ) -> None:
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
