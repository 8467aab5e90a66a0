"""Building blocks only: networks and fixed transforms. No losses live here."""

from genlab.nn.conv import ConvDecoder, ConvEncoder
from genlab.nn.encoder import ENCODER_ARCHITECTURES, EncoderArchitecture, build_encoder
from genlab.nn.mlp import MLP
from genlab.nn.normalizer import AffineNormalizer

__all__ = [
    "ENCODER_ARCHITECTURES",
    "MLP",
    "AffineNormalizer",
    "ConvDecoder",
    "ConvEncoder",
    "EncoderArchitecture",
    "build_encoder",
]
