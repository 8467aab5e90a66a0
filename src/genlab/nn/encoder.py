"""An encoder network for any event shape: an MLP on flattened data or a conv net on images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from torch import nn

from genlab.errors import ConfigError
from genlab.nn.conv import ConvEncoder
from genlab.nn.mlp import MLP

EncoderArchitecture = Literal["mlp", "conv"]
ENCODER_ARCHITECTURES: tuple[str, ...] = get_args(EncoderArchitecture)


def build_encoder(
    event_shape: tuple[int, ...],
    out_features: int,
    architecture: EncoderArchitecture = "mlp",
    hidden: Sequence[int] = (256,),
    channels: int = 32,
    activation: str = "relu",
) -> nn.Module:
    """``(B, *event_shape) -> (B, out_features)``, linear in its last layer.

    Arguments:
        event_shape: shape of one example, ``(D,)`` or ``(C, H, W)``.
        out_features: output size.
        architecture: ``"mlp"`` (flattens the input; ``hidden`` gives the layer sizes) or
            ``"conv"`` (images only: :class:`~genlab.nn.ConvEncoder` with ``channels``).
        hidden: hidden layer sizes of the MLP.
        channels: channels of the first conv layer.
        activation: a key of :data:`genlab.nn.mlp.ACTIVATIONS`.
    """
    if architecture == "conv":
        if len(event_shape) != 3:
            raise ConfigError(f"architecture=conv needs images (C, H, W), got {event_shape}")
        return ConvEncoder(event_shape, out_features, channels, activation)  # type: ignore[arg-type]
    if architecture != "mlp":
        raise ConfigError(f"unknown architecture {architecture!r}; use {ENCODER_ARCHITECTURES}")
    d = math.prod(event_shape)
    return nn.Sequential(nn.Flatten(), MLP(d, out_features, tuple(hidden), activation))
