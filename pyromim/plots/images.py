"""Images: reconstructions next to their originals, and samples from the model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyromim.data import ArrayDataset
from pyromim.plots.figures import pyplot, save
from pyromim.specs import ModelSpec

if TYPE_CHECKING:
    from pyromim.models import LatentVariableModel

#: Built-in image data sets stored as flat vectors, and their image shape.
FLAT_IMAGE_SHAPES = {"digits": (8, 8), "digits_binary": (8, 8), "digits_continuous": (8, 8)}


def image_shape(spec: ModelSpec) -> tuple[int, ...] | None:
    """``(H, W)`` or ``(H, W, 3)`` if the spec's items are images, else ``None``.

    Images are: items of shape ``[C, H, W]`` with ``C`` in (1, 3), ``[H, W]``,
    the flat digits (8 x 8), and flat square binary or grey items of at least 16 values.
    """
    shape = tuple(spec.data.shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[1:] if shape[0] == 1 else shape[1:] + (3,)
    if len(shape) == 2:
        return shape
    if spec.data.dataset in FLAT_IMAGE_SHAPES:
        return FLAT_IMAGE_SHAPES[spec.data.dataset]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) == 1 and side * side == shape[0] and side >= 4 and spec.data.kind in ("binary", "grey"):
        return (side, side)
    return None


def _as_images(x: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    x = x.detach().float()
    if len(shape) == 3:  # stored channels first
        return x.reshape(len(x), shape[2], shape[0], shape[1]).permute(0, 2, 3, 1).clamp(0, 1).numpy()
    return x.reshape((len(x),) + shape).numpy()


def _grid(axes: np.ndarray, images: np.ndarray, vmin: float, vmax: float) -> None:
    for ax, img in zip(axes.ravel(), images):
        ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])


def _range(*arrays: np.ndarray) -> tuple[float, float]:
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    return (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)


@torch.no_grad()
def plot_reconstructions(
    model: LatentVariableModel,
    data: ArrayDataset,
    path: str | Path,
    shape: tuple[int, ...],
    *,
    n: int = 12,
    title: str = "",
) -> Path:
    """Top row: ``n`` data items; bottom row: their reconstructions ``x_hat`` through the posterior mean
    (for a Bernoulli likelihood, the pixel probabilities)."""
    plt = pyplot()
    x = data.x[:n]
    originals, recons = _as_images(x, shape), _as_images(model.reconstruct(x), shape)
    vmin, vmax = _range(originals, recons)
    fig, axes = plt.subplots(2, len(x), figsize=(1.1 * len(x), 2.6), squeeze=False)
    _grid(axes[0], originals, vmin, vmax)
    _grid(axes[1], recons, vmin, vmax)
    axes[0, 0].set_ylabel("data", fontsize=9)
    axes[1, 0].set_ylabel("reconstruction", fontsize=9)
    fig.suptitle(title or f"reconstructions of {data.name}", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


@torch.no_grad()
def plot_samples(
    model: LatentVariableModel,
    path: str | Path,
    shape: tuple[int, ...],
    *,
    n: int = 40,
    columns: int = 10,
    title: str = "",
) -> Path:
    """``n`` draws ``z ~ p(z)`` shown as the decoder's mean ``E[x | z]`` (for Bernoulli pixels
    the probabilities, which show more than one binary draw); for an autoregressive decoder,
    which has no mean in closed form, its greedy decode (see ``title``)."""
    plt = pyplot()
    z = model.sample_latent(n)
    if model.likelihood.owns_decoder:
        images = _as_images(model.likelihood.point_estimate(model.decoder(z)), shape)
    else:
        images = _as_images(model.decode(z).mean, shape)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.0 * columns, 1.0 * rows + 0.4), squeeze=False)
    _grid(axes, images, *_range(images))
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title or "samples: decoder means E[x|z] at z ~ p(z)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
