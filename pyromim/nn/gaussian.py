"""Diagonal Gaussian heads with a floor on the log-variance."""

from __future__ import annotations

import torch
from pyro.nn import PyroModule
from torch import nn


class GaussianHead(PyroModule):
    """``h -> (mu, sigma)`` with ``log sigma^2 = max(Linear(h), min_logvar)``.

    The floor is the reference code's ``--min-logvar``: MIM rewards a
    low-entropy encoder, which otherwise shrinks its variance without bound.
    """

    def __init__(self, in_features: int, out_features: int, min_logvar: float = -6.0) -> None:
        super().__init__()
        self.out_features = int(out_features)
        self.min_logvar = float(min_logvar)
        self.linear = nn.Linear(int(in_features), 2 * self.out_features)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, logvar = self.linear(h).chunk(2, dim=-1)
        return loc, torch.exp(0.5 * logvar.clamp(min=self.min_logvar))


class GaussianNetwork(PyroModule):
    """``x -> body(x) -> GaussianHead``: a conditional diagonal Gaussian ``(mu(x), sigma(x))``."""

    def __init__(self, body: nn.Module, head: GaussianHead) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))
