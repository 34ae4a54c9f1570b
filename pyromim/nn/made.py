"""MADE: a masked MLP whose outputs are autoregressive conditionals over a flat vector.

Germain et al. 2015. Every unit carries a *degree*: input ``d`` (in generation
order ``1..D``) has degree ``d``, a hidden unit has a degree ``m`` in ``0..D-1``,
output ``d`` has degree ``d``. A hidden unit of degree ``m`` sees the inputs of
degree ``<= m`` (and the hidden units of the layer below of degree ``<= m``);
output ``d`` sees the hidden units of degree ``< d``. So the logits of ``x_d``
depend on ``x_<d`` (in the order) only, and

    log p(x | c) = sum_d log p(x_d | x_<d, c)

is one pass. The context ``c`` (a latent ``z``) enters every hidden layer
through an unmasked linear map: degree-0 units see the context alone, so even the
first conditional ``p(x_1 | c)`` depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from pyromim.nn.context import broadcast_context
from pyromim.nn.mlp import make_activation


class _MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 connectivity mask ``M`` (out x in)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(PyroModule):
    """Conditional MADE over ``D`` binary or ``K``-level categorical values.

    :param dim: ``D``, the length of the vector.
    :param context_dim: size of the context vector (the latent ``z``).
    :param hidden: widths of the masked hidden layers.
    :param num_categories: ``None`` (or 2 with ``binary=True``) for binary
        values with Bernoulli logits; ``K >= 2`` for values in ``0..K-1``
        (inputs one-hot encoded, ``K`` logits per value).
    :param order: the generation order, a permutation of ``0..D-1``
        (default ``0, 1, ..., D-1``).
    :param activation: hidden activation name (see :data:`pyromim.nn.ACTIVATIONS`).

    ``forward(x, context)`` maps ``x`` of shape ``batch + (D,)`` and a context
    broadcastable to ``batch + (context_dim,)`` to logits of shape
    ``batch + (D,)`` (binary) or ``batch + (D, K)`` (categorical).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        hidden: Sequence[int] = (128, 128),
        num_categories: int | None = None,
        order: Sequence[int] | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.dim = int(dim)
        self.context_dim = int(context_dim)
        if self.dim < 1 or not hidden:
            raise ValueError(f"MADE needs dim >= 1 and at least one hidden layer, got dim={dim}, hidden={hidden}")
        if num_categories is not None and int(num_categories) < 2:
            raise ValueError(f"MADE num_categories must be None (binary) or >= 2, got {num_categories}")
        self.num_categories = None if num_categories is None else int(num_categories)
        order_t = torch.arange(self.dim) if order is None else torch.as_tensor(list(order), dtype=torch.long)
        if sorted(order_t.tolist()) != list(range(self.dim)):
            raise ValueError(f"MADE order must be a permutation of 0..{self.dim - 1}, got {order_t.tolist()}")
        self.register_buffer("order", order_t)
        # degree of each position: its rank in the order, from 1
        degree = torch.empty(self.dim, dtype=torch.long)
        degree[order_t] = torch.arange(1, self.dim + 1)
        k_in = 1 if self.num_categories is None else self.num_categories
        in_degree = degree.repeat_interleave(k_in)
        out_degree = in_degree
        layers = []
        ctx = []
        prev = in_degree
        for width in hidden:
            deg = torch.arange(int(width)) % self.dim  # degrees 0..D-1
            layers.append(_MaskedLinear(deg[:, None] >= prev[None, :]))
            ctx.append(nn.Linear(self.context_dim, int(width), bias=False))
            prev = deg
        self.hidden_layers = nn.ModuleList(layers)
        self.context_layers = nn.ModuleList(ctx)
        self.output_layer = _MaskedLinear(out_degree[:, None] > prev[None, :])
        self.activation = make_activation(activation)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_categories is None:
            return x.to(torch.get_default_dtype())
        return F.one_hot(x.long(), self.num_categories).flatten(-2).to(torch.get_default_dtype())

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x, context, lead = broadcast_context(x, 1, context)
        h = self._encode(x)
        for layer, ctx in zip(self.hidden_layers, self.context_layers):
            h = self.activation(layer(h) + ctx(context))
        out = self.output_layer(h)
        if self.num_categories is not None:
            out = out.unflatten(-1, (self.dim, self.num_categories))
        return out.reshape(lead + out.shape[1:])
