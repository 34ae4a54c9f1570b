"""Discretised logistic distribution for 8-bit (or ``n_bins``-level) data.

Values live on the grid ``{0, 1/(n-1), ..., 1}`` (``n = n_bins``; 8-bit pixels
divided by 255). With bin half-width ``h = 1 / (2 (n-1))`` and logistic CDF
``sigma((x - mu) / s)``, the probability of a grid point is (Salimans et al.
2017, PixelCNN++)::

    P(0)  = sigma((h - mu) / s)
    P(1)  = 1 - sigma((1 - h - mu) / s)
    P(x)  = sigma((x + h - mu) / s) - sigma((x - h - mu) / s)   otherwise

The interior difference is evaluated in log space through the identity
``sigma(a) - sigma(b) = exp(b) expm1(a - b) / ((1 + e^a)(1 + e^b))``, which is
exact and finite for any ``mu`` and ``s``.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn.functional import softplus


def _log_expm1(delta: torch.Tensor) -> torch.Tensor:
    """``log(exp(delta) - 1)`` for ``delta > 0`` without overflow or cancellation."""
    small = torch.log(torch.expm1(delta.clamp(max=20.0)))
    large = delta + torch.log1p(-torch.exp(-delta.clamp(min=20.0)))
    return torch.where(delta > 20.0, large, small)


class DiscretizedLogistic(TorchDistribution):
    """Logistic(``loc``, ``scale``) discretised to ``n_bins`` levels on ``[0, 1]``.

    :param loc: location, any shape (the batch shape).
    :param scale: positive scale, broadcastable with ``loc``.
    :param n_bins: number of grid levels (256 for 8-bit data).
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        n_bins: int = 256,
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.n_bins = int(n_bins)
        super().__init__(self.loc.shape, torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return DiscretizedLogistic(
            self.loc.expand(batch_shape),
            self.scale.expand(batch_shape),
            self.n_bins,
            validate_args=False,
        )

    @property
    def half_width(self) -> float:
        return 0.5 / (self.n_bins - 1)

    @property
    def mean(self) -> torch.Tensor:
        """``E[x] = sum_k x_k P(x_k)``, summed by parts over the grid ``x_k = k / (n-1)``::

            E[x] = 1/(n-1) sum_{k=1}^{n-1} P(x >= x_k)
                 = 1/(n-1) sum_{k=1}^{n-1} sigma((mu - x_k + h) / s)

        accumulated one grid level at a time (memory of one ``loc``-sized tensor).
        """
        grid = self.n_bins - 1
        total = torch.zeros_like(self.loc)
        for k in range(1, self.n_bins):
            total = total + torch.sigmoid((self.loc - k / grid + self.half_width) / self.scale)
        return total / grid

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        h = self.half_width
        a = (value + h - self.loc) / self.scale
        b = (value - h - self.loc) / self.scale
        interior = b + _log_expm1(a - b) - softplus(a) - softplus(b)
        lower_edge = -softplus(-a)  # log sigma(a)
        upper_edge = -softplus(b)  # log(1 - sigma(b))
        return torch.where(value < h, lower_edge, torch.where(value > 1 - h, upper_edge, interior))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            u = u.clamp(1e-6, 1 - 1e-6)
            y = self.loc + self.scale * (u.log() - (-u).log1p())
            grid = self.n_bins - 1
            return (y * grid).round().clamp(0, grid) / grid
