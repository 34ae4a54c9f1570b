"""Probability distributions that Pyro and PyTorch do not ship."""

from pyromim.distributions.diagonal_normal_mixture import DiagonalNormalMixture
from pyromim.distributions.discretized_logistic import DiscretizedLogistic

__all__ = ["DiagonalNormalMixture", "DiscretizedLogistic"]
