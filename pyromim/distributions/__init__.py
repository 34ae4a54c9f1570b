"""Probability distributions that Pyro and PyTorch do not ship."""

from pyromim.distributions.autoregressive import AutoregressiveDistribution
from pyromim.distributions.diagonal_normal_mixture import DiagonalNormalMixture
from pyromim.distributions.discretized_logistic import DiscretizedLogistic
from pyromim.distributions.made import MADEDistribution
from pyromim.distributions.pixelcnn import PixelCNNDistribution
from pyromim.distributions.token_sequence import TokenSequenceDistribution

__all__ = [
    "AutoregressiveDistribution",
    "DiagonalNormalMixture",
    "DiscretizedLogistic",
    "MADEDistribution",
    "PixelCNNDistribution",
    "TokenSequenceDistribution",
]
