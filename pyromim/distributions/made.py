"""``p(x | z)`` over a flat binary or categorical vector through a :class:`~pyromim.nn.MADE`."""

from __future__ import annotations

import torch

from pyromim.distributions.autoregressive import DiscreteAutoregressiveDistribution
from pyromim.nn.made import MADE


class MADEDistribution(DiscreteAutoregressiveDistribution):
    """``p(x | z) = prod_d p(x_{o_d} | x_{o_<d}, z)`` with the conditionals of a MADE network.

    :param net: a :class:`~pyromim.nn.MADE` (``dim = D``, ``context_dim``,
        binary or ``K`` categories, generation order ``o``).
    :param context: ``z``, shape ``batch_shape + (context_dim,)``.

    ``event_shape == (D,)``. Values are floats in ``{0, 1}`` (binary) or
    integers in ``0..K-1``. ``log_prob`` is one masked pass; ``sample()`` takes
    ``D`` passes of the whole batch (each pass gives the logits of every
    position, only the next one in the order is used: a MADE has no state to
    carry). Measured (``benchmarks/bench_autoregressive.py``, 64 binary values,
    hidden ``(128, 128)``, batch 128, one CPU thread): ``sample()`` 34 ms,
    ``log_prob`` 0.41 ms (0.94 ms with its backward pass), a ratio of 80 (72 to 144 over three runs on a
    shared, loaded host).
    """

    net: MADE

    def __init__(self, net: MADE, context: torch.Tensor, validate_args: bool | None = None) -> None:
        super().__init__(net, context, torch.Size((int(getattr(net, "dim")),)), validate_args=validate_args)

    def _new(self, context: torch.Tensor) -> MADEDistribution:
        return MADEDistribution(self.net, context, validate_args=False)

    def _draw(self, context: torch.Tensor, greedy: bool) -> torch.Tensor:
        x = self._empty(context.shape[0])
        for d in self.net.order.tolist():
            x = self._with(x, (d,), self._pick(self.net(x, context)[:, d], greedy))
        return x
