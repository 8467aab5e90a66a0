"""Building blocks only: networks and fixed transforms. No losses live here."""

from genlab.nn.context import append_context
from genlab.nn.conv import ConvDecoder, ConvEncoder
from genlab.nn.denoisers import MLPDenoiser, TimestepEmbedding, UNet
from genlab.nn.mlp import ACTIVATIONS, MLP, Activation
from genlab.nn.networks import (
    ARCHITECTURES,
    ENCODER_ARCHITECTURES,
    Architecture,
    EncoderArchitecture,
    build_decoder,
    build_encoder,
)
from genlab.nn.normalizer import AffineNormalizer
from genlab.nn.projection import ProjectionDiscriminator

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "ENCODER_ARCHITECTURES",
    "MLP",
    "Activation",
    "AffineNormalizer",
    "Architecture",
    "ConvDecoder",
    "ConvEncoder",
    "EncoderArchitecture",
    "MLPDenoiser",
    "TimestepEmbedding",
    "UNet",
    "ProjectionDiscriminator",
    "append_context",
    "build_decoder",
    "build_encoder",
]
