"""Diagonal Gaussian heads with a floor on the standard deviation.

The scale is parameterised as in the MIM reference code::

    sigma = exp(raw) + min_scale

so ``sigma > min_scale`` always, and unlike a clamp on the log-variance the
floor never cuts the gradient: an encoder that has shrunk its variance to the
floor can still widen it again. ``raw`` is a log standard deviation (not a
log-variance), which is what makes the learning dynamics match the reference:
the same optimiser step moves ``log sigma`` twice as far as it would through
``exp(raw / 2)``. With MIM on the toy mixtures this matters: the slower
parameterisation left one seed in three at 20 hidden units in a merged-cluster
optimum that the reference's parameterisation escapes (seen on toy4 in
``python -m paper.toy_expressiveness --seeds 3`` when the parameterisation was
changed; the slower one is no longer there to rerun).

The floor was once given as a log-variance, ``min_logvar`` (``min_scale =
exp(min_logvar / 2)``); that keyword still works, with a deprecation warning.
"""

from __future__ import annotations

import math
import warnings

import torch
from pyro.nn import PyroModule
from torch import nn

#: The default floor on a standard deviation, ``exp(-3)`` (a log-variance of -6).
DEFAULT_MIN_SCALE = math.exp(-3.0)


def resolve_min_scale(min_scale: float, min_logvar: float | None, where: str) -> float:
    """``min_scale``, or ``exp(min_logvar / 2)`` (with a :class:`DeprecationWarning`) when the old keyword is given."""
    if min_logvar is None:
        return float(min_scale)
    warnings.warn(
        f"{where}: min_logvar is deprecated; give the standard-deviation floor itself, "
        f"min_scale = exp(min_logvar / 2) = {math.exp(0.5 * float(min_logvar)):.6g}",
        DeprecationWarning,
        stacklevel=3,
    )
    return math.exp(0.5 * float(min_logvar))


def floored_scale(raw: torch.Tensor, min_scale: float) -> torch.Tensor:
    """``exp(raw) + min_scale``: a standard deviation above the floor ``min_scale``."""
    return torch.exp(raw) + float(min_scale)


class GaussianHead(PyroModule):
    """``h -> (mu, sigma)`` with ``sigma = exp(Linear(h)) + min_scale``.

    The floor is the reference code's ``--min-logvar`` (there ``10**-6``): MIM
    rewards a low-entropy encoder, which otherwise shrinks its variance without bound.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        min_scale: float = DEFAULT_MIN_SCALE,
        *,
        min_logvar: float | None = None,
    ) -> None:
        super().__init__()
        self.out_features = int(out_features)
        self.min_scale = resolve_min_scale(min_scale, min_logvar, "GaussianHead")
        if not (self.min_scale > 0 and math.isfinite(self.min_scale)):
            raise ValueError(f"GaussianHead: min_scale must be > 0 and finite, got {self.min_scale}")
        self.linear = nn.Linear(int(in_features), 2 * self.out_features)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.linear(h).chunk(2, dim=-1)
        return loc, floored_scale(raw, self.min_scale)


class GaussianNetwork(PyroModule):
    """``x -> body(x) -> GaussianHead``: a conditional diagonal Gaussian ``(mu(x), sigma(x))``."""

    def __init__(self, body: nn.Module, head: GaussianHead) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))
