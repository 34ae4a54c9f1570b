"""Networks for encoders and decoders: MLPs, small conv nets, Gaussian heads, autoregressive decoders."""

from pyromim.nn.conv import ConvDecoder, ConvEncoder
from pyromim.nn.gaussian import GaussianHead, GaussianNetwork
from pyromim.nn.made import MADE
from pyromim.nn.mlp import ACTIVATIONS, MLP, NORMS
from pyromim.nn.networks import NETWORKS, Network
from pyromim.nn.pixelcnn import GatedPixelCNN
from pyromim.nn.recurrent import RNN_CELLS, GRULanguageModel, SequenceEncoder

__all__ = [
    "ACTIVATIONS",
    "MADE",
    "MLP",
    "NETWORKS",
    "NORMS",
    "RNN_CELLS",
    "ConvDecoder",
    "ConvEncoder",
    "GRULanguageModel",
    "GatedPixelCNN",
    "GaussianHead",
    "GaussianNetwork",
    "Network",
    "SequenceEncoder",
]
