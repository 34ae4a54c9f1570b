"""Data and the training loop shared by the adapted Pyro programs (not part of Pyro's code).

Pyro's examples read MNIST or polyphonic music; these read scikit-learn's 8x8
digits (1797 images, pixel intensities scaled to [0, 1]) or draw small
synthetic binary sequences, so they run offline (each script's docstring gives
its quick mode and what its times were measured on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pyro
import torch
from pyro.infer import SVI
from sklearn.datasets import load_digits


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """``(1797, 8, 8)`` images in [0, 1] and their ``(1797,)`` labels."""
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    return images, torch.tensor(digits.target)


def minibatches(n: int, batch_size: int, steps: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Index tensors of ``steps`` shuffled minibatches over ``n`` items, epoch after epoch."""
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for idx in torch.randperm(n, generator=g).split(batch_size):
            if done == steps:
                return
            yield idx
            done += 1


def train(
    model: Callable,
    guide: Callable,
    loss: pyro.infer.ELBO,
    batches: Iterator[tuple],
    lr: float = 1e-3,
) -> list[float]:
    """Plain ``SVI`` steps, one per batch of the model's arguments; the per-datum losses."""
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), loss=loss)
    losses = []
    for args in batches:
        value = svi.step(*args)
        losses.append(value / len(args[0]))
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} after {len(losses)} steps")
    return losses


def mean_of_window(values: list[float], start: int, width: int) -> float:
    window = values[start : start + width] if start >= 0 else values[start:][:width]
    return sum(window) / len(window)
