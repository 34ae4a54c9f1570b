"""Networks for encoders and decoders: MLPs, small conv nets, Gaussian heads."""

from pyromim.nn.conv import ConvDecoder, ConvEncoder
from pyromim.nn.gaussian import GaussianHead, GaussianNetwork
from pyromim.nn.mlp import ACTIVATIONS, MLP, NORMS
from pyromim.nn.networks import NETWORKS, Network

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "NETWORKS",
    "NORMS",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianHead",
    "GaussianNetwork",
    "Network",
]
