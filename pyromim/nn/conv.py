"""Small convolutional encoder and decoder for ``C x H x W`` images.

Each encoder layer is a stride-2 ``3 x 3`` convolution (``H -> ceil(H / 2)``);
the decoder mirrors it with transposed convolutions whose output padding is
chosen so that any ``H x W`` (28, 8, odd sizes) is reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.nn import PyroModule
from torch import nn

from pyromim.nn.batching import over_leading_dims
from pyromim.nn.mlp import make_activation


def _spatial_sizes(size: int, n_layers: int) -> list[int]:
    sizes = [size]
    for _ in range(n_layers):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class ConvEncoder(PyroModule):
    """``(C, H, W) -> conv(channels[0]) -> ... -> Linear -> activation -> out_features``."""

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"ConvEncoder needs a (C, H, W) input shape, got {tuple(in_shape)}")
        c, h, w = (int(s) for s in in_shape)
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, int(c_out), 3, stride=2, padding=1), make_activation(activation)]
            c = int(c_out)
        hs, ws = _spatial_sizes(h, len(channels))[-1], _spatial_sizes(w, len(channels))[-1]
        layers += [nn.Flatten(), nn.Linear(c * hs * ws, int(out_features)), make_activation(activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return over_leading_dims(self.net, x, 3)


class ConvDecoder(PyroModule):
    """``z -> Linear -> (channels[0], h, w) -> transposed convs -> out_shape``."""

    def __init__(
        self,
        in_features: int,
        out_shape: Sequence[int],
        channels: Sequence[int] = (64, 32),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(out_shape) != 3:
            raise ValueError(f"ConvDecoder needs a (C, H, W) output shape, got {tuple(out_shape)}")
        c_out, h, w = (int(s) for s in out_shape)
        self.out_shape = (c_out, h, w)
        hs, ws = _spatial_sizes(h, len(channels))[::-1], _spatial_sizes(w, len(channels))[::-1]
        chans = [int(c) for c in channels] + [c_out]
        layers: list[nn.Module] = [
            nn.Linear(int(in_features), chans[0] * hs[0] * ws[0]),
            make_activation(activation),
            nn.Unflatten(1, (chans[0], hs[0], ws[0])),
        ]
        for i in range(len(channels)):
            pad = (hs[i + 1] - (2 * hs[i] - 1), ws[i + 1] - (2 * ws[i] - 1))
            layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 3, stride=2, padding=1, output_padding=pad))
            if i < len(channels) - 1:
                layers.append(make_activation(activation))
        self.net = nn.Sequential(*layers)
        self.in_features = int(in_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return over_leading_dims(self.net, z, 1)
