"""Multi-layer perceptron over flattened inputs of any shape."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from pyro.nn import PyroModule
from torch import nn

from pyromim.nn.batching import over_leading_dims

#: Activations by name (a spec's ``activation``; the spec's validation reads this too).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}
#: Normalisations between hidden layers by name (a spec's ``norm``).
NORMS = ("none", "layer", "batch")


#: Activations applied in place when no gradient is recorded (the same kernel, so the same
#: values): a hidden layer's input and output are then not both held, which halves the
#: peak memory of large evaluation blocks (200 importance samples of 1000 items through
#: 50 units: 40 MB per copy).
_IN_PLACE: dict[type[nn.Module], Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.Tanh: lambda m, x: x.tanh_(),
    nn.ReLU: lambda m, x: x.relu_(),
    nn.SiLU: lambda m, x: nn.functional.silu(x, inplace=True),
    nn.ELU: lambda m, x: nn.functional.elu(x, cast(nn.ELU, m).alpha, inplace=True),
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _norm(kind: str, width: int) -> list[nn.Module]:
    if kind == "none":
        return []
    if kind == "layer":
        return [nn.LayerNorm(width)]
    if kind == "batch":
        return [nn.BatchNorm1d(width)]
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORMS}")


class MLP(PyroModule):
    """``in_shape -> hidden[0] -> ... -> hidden[-1] -> out_shape``.

    Each hidden layer is ``Linear -> [norm] -> activation``. The input's trailing
    ``in_shape`` dims are flattened and the output reshaped to ``out_shape``;
    any leading dims pass through. ``activate_output`` applies the activation
    to the output too (for feature extractors).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        hidden: Sequence[int] = (),
        activation: str = "tanh",
        norm: str = "none",
        activate_output: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        widths = [math.prod(self.in_shape), *map(int, hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), *_norm(norm, b), make_activation(activation)]
        layers.append(nn.Linear(widths[-1], math.prod(self.out_shape)))
        if activate_output:
            layers.append(make_activation(activation))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def flat(x2d: torch.Tensor) -> torch.Tensor:
            return self._layers(x2d.flatten(1)).reshape((-1,) + self.out_shape)

        return over_leading_dims(flat, x, len(self.in_shape))

    def _layers(self, y: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            return self.net(y)
        # every activation follows a Linear or a norm layer, whose output is a new tensor
        for layer in self.net:  # (PyroModule makes the layers subclasses of the torch.nn ones)
            in_place = next((fn for kind, fn in _IN_PLACE.items() if isinstance(layer, kind)), None)
            y = layer(y) if in_place is None else in_place(layer, y)
        return y
