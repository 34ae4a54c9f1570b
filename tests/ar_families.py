"""Tiny autoregressive decoders for the tests: each with every outcome enumerated.

A family gives the network, the distribution around a context, the list of all
values the distribution can take (small enough to enumerate), the generation
order of its positions and, for the sequence families, the special ids.
Parameters are perturbed away from the default initialisation so that the
conditionals are far from uniform (a test of sampling frequencies against
nearly uniform probabilities would have little power).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyromim.distributions import MADEDistribution, PixelCNNDistribution, TokenSequenceDistribution
from pyromim.nn import MADE, GatedPixelCNN, GRULanguageModel

CONTEXT_DIM = 2


def sharpen(net: torch.nn.Module, seed: int, scale: float = 0.6) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return net


@dataclass
class Family:
    name: str
    net: torch.nn.Module
    make: Callable[[torch.Tensor], torch.distributions.Distribution]
    outcomes: torch.Tensor  # (M,) + event_shape: every value of the support
    positions: list[tuple[int, ...]]  # event indices in generation order
    num_categories: int | None  # None: binary; tokens: the vocabulary size


def _grid(levels, shape, dtype):
    n = 1
    for s in shape:
        n *= s
    return torch.tensor(list(itertools.product(levels, repeat=n)), dtype=dtype).reshape((-1, *shape))


def _sequences(words, eos, pad, max_len):
    seen = {}
    for seq in itertools.product([*words, eos], repeat=max_len):
        seq = list(seq)
        if eos in seq:
            k = seq.index(eos)
            seq = seq[: k + 1] + [pad] * (max_len - k - 1)
        seen[tuple(seq)] = None
    return torch.tensor(list(seen))


def made_binary() -> Family:
    net = sharpen(MADE(4, CONTEXT_DIM, hidden=(16, 16), order=(2, 0, 3, 1)), 1)
    order = [(2,), (0,), (3,), (1,)]
    return Family("made_binary", net, lambda c: MADEDistribution(net, c), _grid([0, 1], (4,), torch.float), order, None)


def made_categorical() -> Family:
    net = sharpen(MADE(3, CONTEXT_DIM, hidden=(24,), num_categories=3, order=(1, 2, 0)), 2)
    order = [(1,), (2,), (0,)]
    return Family(
        "made_categorical", net, lambda c: MADEDistribution(net, c), _grid(range(3), (3,), torch.long), order, 3
    )


def pixelcnn_binary() -> Family:
    net = sharpen(GatedPixelCNN((2, 3), CONTEXT_DIM, channels=8, num_layers=2), 3)
    raster = [(i, j) for i in range(2) for j in range(3)]
    return Family(
        "pixelcnn_binary", net, lambda c: PixelCNNDistribution(net, c), _grid([0, 1], (2, 3), torch.float), raster, None
    )


def pixelcnn_categorical() -> Family:
    net = sharpen(GatedPixelCNN((2, 2), CONTEXT_DIM, num_categories=3, channels=8, num_layers=2, kernel=5), 4)
    raster = [(i, j) for i in range(2) for j in range(2)]
    return Family(
        "pixelcnn_categorical",
        net,
        lambda c: PixelCNNDistribution(net, c),
        _grid(range(3), (2, 2), torch.long),
        raster,
        3,
    )


def gru() -> Family:
    net = sharpen(GRULanguageModel(6, CONTEXT_DIM, embedding_dim=4, hidden_size=8), 5)
    outcomes = _sequences([3, 4, 5], eos=2, pad=0, max_len=3)
    return Family("gru", net, lambda c: TokenSequenceDistribution(net, c, 3), outcomes, [(0,), (1,), (2,)], 6)


def lstm() -> Family:
    net = GRULanguageModel(
        6,
        CONTEXT_DIM,
        embedding_dim=4,
        hidden_size=8,
        num_layers=2,
        cell="lstm",
        context_every_step=False,
        pad_id=5,
        bos_id=0,
        eos_id=3,
    )
    sharpen(net, 6)
    outcomes = _sequences([1, 2, 4], eos=3, pad=5, max_len=3)
    return Family("lstm", net, lambda c: TokenSequenceDistribution(net, c, 3), outcomes, [(0,), (1,), (2,)], 6)


FAMILIES = [made_binary, made_categorical, pixelcnn_binary, pixelcnn_categorical, gru, lstm]
