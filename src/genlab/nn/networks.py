"""Encoders and decoders for any event shape: MLPs on flattened data, conv nets on images.

The one place the ``architecture`` option of a family (``"mlp"``, ``"conv"``, ``"linear"``)
becomes networks; families only say what goes in and out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from torch import nn

from genlab.errors import ConfigError
from genlab.nn.conv import ConvDecoder, ConvEncoder
from genlab.nn.mlp import MLP, Activation

Architecture = Literal["mlp", "conv", "linear"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
EncoderArchitecture = Literal["mlp", "conv"]
ENCODER_ARCHITECTURES: tuple[str, ...] = get_args(EncoderArchitecture)


def _check(architecture: str, image_shape: tuple[int, ...]) -> None:
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {architecture!r}; use one of {ARCHITECTURES}")
    if architecture == "conv" and len(image_shape) != 3:
        raise ConfigError(f"architecture=conv needs images (C, H, W), got {image_shape}")


def build_encoder(
    event_shape: tuple[int, ...],
    out_features: int,
    architecture: Architecture = "mlp",
    hidden: Sequence[int] = (256,),
    channels: int = 32,
    activation: Activation = "relu",
) -> nn.Module:
    """``(B, *event_shape) -> (B, out_features)``, linear in its last layer.

    Arguments:
        event_shape: shape of one example, ``(D,)`` or ``(C, H, W)``.
        out_features: output size.
        architecture: ``"mlp"`` (flattens the input; ``hidden`` gives the layer sizes),
            ``"linear"`` (one linear map) or ``"conv"`` (images only:
            :class:`~genlab.nn.ConvEncoder` with ``channels``).
        hidden: hidden layer sizes of the MLP.
        channels: channels of the first conv layer.
        activation: a key of :data:`genlab.nn.mlp.ACTIVATIONS`.
    """
    _check(architecture, event_shape)
    if architecture == "conv":
        return ConvEncoder(event_shape, out_features, channels, activation)  # type: ignore[arg-type]
    hidden = tuple(hidden) if architecture == "mlp" else ()
    return nn.Sequential(
        nn.Flatten(), MLP(math.prod(event_shape), out_features, hidden, activation)
    )


def build_decoder(
    latent_dim: int,
    out_shape: tuple[int, ...],
    architecture: Architecture = "mlp",
    hidden: Sequence[int] = (256,),
    channels: int = 32,
    activation: Activation = "relu",
    *,
    output_activation: nn.Module | None = None,
    flat: bool = False,
) -> nn.Module:
    """``(B, latent_dim) -> (B, *out_shape)``, or ``(B, prod(out_shape))`` with ``flat``.

    Arguments:
        latent_dim: size of the code.
        out_shape: shape of one output, ``(D,)`` or ``(C, H, W)`` (conv needs the latter).
        architecture: ``"mlp"`` (``hidden`` gives the layer sizes from the code up),
            ``"linear"`` (one linear map) or ``"conv"`` (:class:`~genlab.nn.ConvDecoder`).
        hidden: hidden layer sizes of the MLP.
        channels: channels of the conv decoder's last hidden layer (its encoder's first).
        activation: a key of :data:`genlab.nn.mlp.ACTIVATIONS`.
        output_activation: applied to the output (e.g. ``nn.Tanh()`` for data in [-1, 1]).
        flat: return flattened outputs (a likelihood head reads ``(B, prod(out_shape))``).
    """
    _check(architecture, out_shape)
    if architecture == "conv":
        layers: list[nn.Module] = [ConvDecoder(latent_dim, out_shape, channels, activation)]  # type: ignore[arg-type]
    else:
        hidden = tuple(hidden) if architecture == "mlp" else ()
        layers = [MLP(latent_dim, math.prod(out_shape), hidden, activation)]
    if output_activation is not None:
        layers.append(output_activation)
    if flat and architecture == "conv":
        layers.append(nn.Flatten())
    elif not flat and architecture != "conv":
        layers.append(nn.Unflatten(1, out_shape))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)
