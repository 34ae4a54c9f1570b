"""Diagonal Gaussian heads with a floor on the standard deviation.

The scale is parameterised as in the MIM reference code::

    sigma = exp(raw) + sigma_min,        sigma_min = exp(min_logvar / 2)

so ``log sigma^2 > min_logvar`` always, and unlike a clamp on the log-variance
the floor never cuts the gradient: an encoder that has shrunk its variance to
the floor can still widen it again. ``raw`` is a log standard deviation (not a
log-variance), which is what makes the learning dynamics match the reference:
the same optimiser step moves ``log sigma`` twice as far as it would through
``exp(raw / 2)``. With MIM on the toy mixtures this matters: the slower
parameterisation left one seed in three at 20 hidden units in a merged-cluster
optimum that the reference's parameterisation escapes.
"""

from __future__ import annotations

import math

import torch
from pyro.nn import PyroModule
from torch import nn


def floored_scale(raw: torch.Tensor, min_logvar: float) -> torch.Tensor:
    """``exp(raw) + exp(min_logvar / 2)``: a standard deviation above the floor ``exp(min_logvar / 2)``."""
    return torch.exp(raw) + math.exp(0.5 * float(min_logvar))


class GaussianHead(PyroModule):
    """``h -> (mu, sigma)`` with ``sigma = exp(Linear(h)) + exp(min_logvar / 2)``.

    The floor is the reference code's ``--min-logvar``: MIM rewards a
    low-entropy encoder, which otherwise shrinks its variance without bound.
    """

    def __init__(self, in_features: int, out_features: int, min_logvar: float = -6.0) -> None:
        super().__init__()
        self.out_features = int(out_features)
        self.min_logvar = float(min_logvar)
        self.linear = nn.Linear(int(in_features), 2 * self.out_features)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.linear(h).chunk(2, dim=-1)
        return loc, floored_scale(raw, self.min_logvar)


class GaussianNetwork(PyroModule):
    """``x -> body(x) -> GaussianHead``: a conditional diagonal Gaussian ``(mu(x), sigma(x))``."""

    def __init__(self, body: nn.Module, head: GaussianHead) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))
