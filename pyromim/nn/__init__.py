"""Networks for encoders and decoders: MLPs, small conv nets, Gaussian heads."""

from pyromim.nn.conv import ConvDecoder, ConvEncoder
from pyromim.nn.gaussian import GaussianHead, GaussianNetwork
from pyromim.nn.mlp import ACTIVATIONS, MLP

__all__ = ["ACTIVATIONS", "MLP", "ConvDecoder", "ConvEncoder", "GaussianHead", "GaussianNetwork"]
