"""Building blocks only: networks and fixed transforms. No losses live here."""

from genlab.nn.conv import ConvDecoder, ConvEncoder
from genlab.nn.mlp import MLP
from genlab.nn.normalizer import AffineNormalizer

__all__ = ["MLP", "AffineNormalizer", "ConvDecoder", "ConvEncoder"]
