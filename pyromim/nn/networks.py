"""The networks a spec can name (``[encoder]`` / ``[decoder] network``), by name.

:data:`NETWORKS` is read by the spec's validation (the allowed names) and by
the model builder (how to make an encoder body and a decoder): a new kind of
network is one :class:`Network` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pyromim.nn.conv import ConvDecoder, ConvEncoder
from pyromim.nn.mlp import MLP
from pyromim.nn.recurrent import SequenceEncoder


@dataclass(frozen=True)
class Network:
    """How to build one kind of network from a ``NetworkSpec`` (``hidden``, ``activation``, ``norm``, ``channels``).

    :param encoder_body: ``(net, in_shape, width) -> module`` mapping inputs of shape ``in_shape`` to ``width`` features.
    :param decoder: ``(net, latent_dim, param_shape) -> module`` mapping latents to likelihood parameters.
    """

    encoder_body: Callable[[Any, tuple[int, ...], int], nn.Module]
    decoder: Callable[[Any, int, tuple[int, ...]], nn.Module]


def _mlp_body(net: Any, in_shape: tuple[int, ...], width: int) -> nn.Module:
    if not net.hidden:
        return nn.Flatten(-len(in_shape))
    return MLP(in_shape, (width,), net.hidden[:-1], net.activation, net.norm, activate_output=True)


def _mlp_decoder(net: Any, latent_dim: int, param_shape: tuple[int, ...]) -> nn.Module:
    return MLP((latent_dim,), param_shape, net.hidden, net.activation, net.norm)


def _conv_body(net: Any, in_shape: tuple[int, ...], width: int) -> nn.Module:
    return ConvEncoder(in_shape, width, net.channels, net.activation)


def _conv_decoder(net: Any, latent_dim: int, param_shape: tuple[int, ...]) -> nn.Module:
    n_params, c, h, w = param_shape
    return nn.Sequential(
        ConvDecoder(latent_dim, (n_params * c, h, w), net.channels, net.activation),
        nn.Unflatten(-3, (n_params, c)),
    )


class _TokenEncoder(nn.Module):
    """One-hot token sequences ``(..., L, V)`` -> ids -> :class:`~pyromim.nn.SequenceEncoder` features."""

    def __init__(self, net: Any, in_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(
            in_shape[-1], width, embedding_dim=net.embedding_dim, hidden_size=net.hidden[0], num_layers=len(net.hidden)
        )

    def forward(self, one_hot_tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(one_hot_tokens.argmax(-1))


def _gru_body(net: Any, in_shape: tuple[int, ...], width: int) -> nn.Module:
    if len(in_shape) != 2:
        raise ValueError(
            f"the gru encoder reads token sequences (one-hot features of shape [L, V], as the categorical and "
            f"gru likelihoods give them), got features of shape {list(in_shape)}"
        )
    return _TokenEncoder(net, in_shape, width)


def _no_decoder(net: Any, latent_dim: int, param_shape: tuple[int, ...]) -> nn.Module:
    raise ValueError(
        "the gru network is an encoder for token sequences; for a recurrent decoder set [model] likelihood = 'gru'"
    )


#: Network kinds by name.
NETWORKS: dict[str, Network] = {
    "mlp": Network(_mlp_body, _mlp_decoder),
    "conv": Network(_conv_body, _conv_decoder),
    "gru": Network(_gru_body, _no_decoder),
}


def encoder_width(net: Any, in_shape: tuple[int, ...]) -> int:
    """The feature width an encoder body hands its Gaussian head: the last hidden width (or the input size)."""
    return net.hidden[-1] if net.hidden else math.prod(in_shape)


__all__ = ["NETWORKS", "Network", "encoder_width"]
