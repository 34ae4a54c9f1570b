"""``p(x | z)`` over a flat binary or categorical vector through a :class:`~pyromim.nn.MADE`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pyromim.distributions.autoregressive import DiscreteAutoregressiveDistribution
from pyromim.nn.made import MADE


class MADEDistribution(DiscreteAutoregressiveDistribution):
    """``p(x | z) = prod_d p(x_{o_d} | x_{o_<d}, z)`` with the conditionals of a MADE network.

    :param net: a :class:`~pyromim.nn.MADE` (``dim = D``, ``context_dim``,
        binary or ``K`` categories, generation order ``o``).
    :param context: ``z``, shape ``batch_shape + (context_dim,)``.

    ``event_shape == (D,)``. Values are floats in ``{0, 1}`` (binary) or
    integers in ``0..K-1``. ``log_prob`` is one masked pass; ``sample()`` takes ``D`` steps, each only the
    work its conditional needs (see ``_draw``). Measured
    (``benchmarks/bench_autoregressive.py``, 64 binary values, hidden ``(128, 128)``,
    batch 128, one CPU thread, a shared host at load 3 to 4): ``sample()`` 8.4 ms,
    ``log_prob`` 0.42 ms (0.97 ms with its backward pass), a ratio of 20 (80 when each
    step ran the whole network).
    """

    net: MADE

    def __init__(self, net: MADE, context: torch.Tensor, validate_args: bool | None = None) -> None:
        super().__init__(net, context, torch.Size((int(getattr(net, "dim")),)), validate_args=validate_args)

    def _new(self, context: torch.Tensor) -> MADEDistribution:
        return MADEDistribution(self.net, context, validate_args=False)

    def _draw(self, context: torch.Tensor, greedy: bool) -> torch.Tensor:
        """Positions in generation order, each from only the work its conditional needs.

        The first hidden layer's pre-activation is kept and grows by the masked weights'
        column of each value drawn (a value not yet drawn adds nothing, and the masks
        keep it from the positions before it anyway); the later hidden layers run on it;
        and only the output rows of the position drawn next are computed. A draw thus
        costs about one teacher-forced pass plus a small per-position overhead, instead
        of ``D`` passes.
        """
        net = self.net
        k = 1 if net.num_categories is None else net.num_categories
        first: Any = net.hidden_layers[0]  # masked layers
        w_in = first.weight * first.mask  # (width, D k): input position d owns columns d k .. d k + k - 1
        pre = first.bias + net.context_layers[0](context)
        later = [(layer, ctx(context)) for layer, ctx in zip(net.hidden_layers[1:], net.context_layers[1:])]
        out: Any = net.output_layer
        w_out, b_out = out.weight * out.mask, out.bias
        order = net.order.tolist()
        if net.num_categories is None:
            values = self._draw_binary(pre, later, w_in, w_out, b_out, order, greedy)
        else:
            values = []
            for d in order:
                h = net.activation(pre)
                for layer, ctx in later:
                    h = net.activation(layer(h) + ctx)
                rows = slice(d * k, d * k + k)
                value = self._pick(F.linear(h, w_out[rows], b_out[rows]), greedy)
                values.append(value)
                pre = pre + F.linear(F.one_hot(value, k).to(pre.dtype), w_in[:, rows])
        # the values in generation order, put back in position order
        return torch.stack(values, 1)[:, torch.argsort(net.order)]

    def _draw_binary(self, pre, later, w_in, w_out, b_out, order: list[int], greedy: bool) -> list[torch.Tensor]:
        """Binary values in generation order: ``x_d = 1[logit_d > e_d]`` with logistic noise
        ``e_d`` drawn for every position at once (``0`` when ``greedy``), a Bernoulli draw with
        ``sigmoid(logit_d)``; each step is a few fused operations."""
        net = self.net
        if greedy:
            noise = pre.new_zeros(pre.shape[0], len(order))
        else:
            u = torch.rand(pre.shape[0], len(order), dtype=pre.dtype, device=pre.device)
            noise = u.log() - (-u).log1p()
        thresholds, rows_out, biases = noise.unbind(1), w_out.unbind(0), b_out.unbind(0)
        columns_in = w_in.t().unbind(0)
        values = []
        for step, d in enumerate(order):
            h = net.activation(pre)
            for layer, ctx in later:
                h = net.activation(layer(h) + ctx)
            value = (torch.addmv(biases[d], h, rows_out[d]) > thresholds[step]).to(pre.dtype)
            values.append(value)
            pre = torch.addr(pre, value, columns_in[d])
        return values
