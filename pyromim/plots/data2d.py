"""2-D data: the data, their reconstructions and samples from the model, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pyromim.data import ArrayDataset
from pyromim.plots.figures import label_colours, pyplot, save

if TYPE_CHECKING:
    from pyromim.models import LatentVariableModel


@torch.no_grad()
def plot_data_2d(
    model: LatentVariableModel, data: ArrayDataset, path: str | Path, *, max_points: int = 2000, title: str = ""
) -> Path:
    """Three panels on shared axes: data ``x``; reconstructions ``x_hat`` through the posterior
    mean, coloured by the label of the item they reconstruct; draws ``x ~ p(x|z), z ~ p(z)``."""
    plt = pyplot()
    x = data.x[:max_points]
    recon = model.reconstruct(x).numpy()
    samples = model.sample(len(x)).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), sharex=True, sharey=True)
    labels = None if data.labels is None else data.labels[:max_points].numpy()
    for ax, points, name in ((axes[0], x.numpy(), "data"), (axes[1], recon, "reconstructions")):
        if labels is None:
            ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, color="tab:blue", label=name)
        else:
            values, cmap = label_colours(labels)
            for i, v in enumerate(values):
                mask = labels == v
                ax.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.5, color=cmap(i % cmap.N), label=f"label {v}")
        ax.set_title(f"{name} ({len(points)} test points)")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=4, alpha=0.5, color="tab:grey", label="x ~ p(x|z), z ~ p(z)")
    axes[2].set_title(f"samples from the model ({len(samples)})")
    for ax in axes:
        ax.set(xlabel="x1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=3, loc="upper right")
    axes[0].set_ylabel("x2")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
