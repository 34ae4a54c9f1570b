"""Trained models side by side: each model's reconstructions and latents on the same data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyromim.plots.figures import label_colours, pyplot, save

if TYPE_CHECKING:
    from pyromim.models import LatentVariableModel


def plot_setting_runs(
    models: Mapping[str, LatentVariableModel],
    x: torch.Tensor,
    labels: torch.Tensor,
    path: str | Path,
    *,
    max_points: int = 1500,
    title: str = "",
) -> Path:
    """Rows: one trained model each. Columns: test data and reconstructions (dims 0-1 of x), and the
    posterior means of ``q(z|x)`` (dims 0-1 of z) with 1-sigma ellipses for some points, on ``N(0, I)`` circles."""
    from matplotlib.patches import Circle, Ellipse

    plt = pyplot()
    x, label_values = x[:max_points], labels[:max_points].numpy()
    values, cmap = label_colours(label_values)
    colours = [cmap(values.index(int(v)) % cmap.N) for v in label_values]
    fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 3.1 * len(models)), squeeze=False)
    for row, (label, model) in zip(axes, models.items()):
        model.eval()
        with torch.no_grad():
            loc, scale = (t.numpy() for t in model.posterior(x))
            recon = model.reconstruct(x).numpy()
        ax = row[0]
        ax.scatter(x[:, 0], x[:, 1], s=3, c="lightgrey", label="test data")
        ax.scatter(recon[:, 0], recon[:, 1], s=3, c=colours, label="reconstructions")
        shown = "" if x.shape[-1] == 2 else f" (x1-x2 of {x.shape[-1]})"
        ax.set(xlabel="x1", ylabel="x2", title=f"{label}: data, recon.{shown}")
        ax.legend(fontsize=7, markerscale=3, loc="lower left")
        ax = row[1]
        ax.scatter(loc[:, 0], loc[:, 1], s=3, c=colours)
        for i in range(min(150, len(loc))):
            ax.add_patch(
                Ellipse(
                    tuple(loc[i, :2]),
                    2 * scale[i, 0],
                    2 * scale[i, 1],
                    fill=False,
                    edgecolor=colours[i],
                    lw=0.6,
                    alpha=0.7,
                )
            )
        for r in (1, 2):
            ax.add_patch(Circle((0, 0), r, fill=False, ls="--", lw=0.8, edgecolor="black", alpha=0.5))
        shown = "" if loc.shape[-1] == 2 else f" (z1-z2 of {loc.shape[-1]})"
        ax.set(xlabel="z1", ylabel="z2", title=f"{label}: q(z|x) means, 1 sd{shown}")
        ax.set_aspect("equal", adjustable="datalim")
        for a in row:
            a.title.set_fontsize(9)
            a.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


@torch.no_grad()
def plot_image_model_rows(
    models: Mapping[str, LatentVariableModel],
    x: torch.Tensor,
    labels: torch.Tensor,
    shape: tuple[int, int],
    path: str | Path,
    *,
    n_images: int = 8,
    max_points: int = 1000,
    title: str = "",
) -> Path:
    """Rows: one trained image model each. Columns: posterior means of ``q(z|x)`` (first two principal
    components, coloured by label), test images over their reconstructions, and decoder means at ``z ~ p(z)``."""
    plt = pyplot()
    values, cmap = label_colours(labels[:max_points].numpy())
    fig = plt.figure(figsize=(9.0, 3.0 * len(models)))
    grid = fig.add_gridspec(len(models), 3, width_ratios=[1.2, 1.0, 1.0], hspace=0.45, wspace=0.3)
    for row, (label, model) in enumerate(models.items()):
        model.eval()
        loc, _ = model.posterior(x[:max_points])
        centred = loc.numpy() - loc.numpy().mean(0)
        _, _, right_vectors = np.linalg.svd(centred, full_matrices=False)
        points = centred @ right_vectors[:2].T
        ax = fig.add_subplot(grid[row, 0])
        for v in values:
            mask = labels[:max_points].numpy() == v
            ax.scatter(points[mask, 0], points[mask, 1], s=3, color=cmap(values.index(v) % cmap.N), label=str(v))
        ax.set(xlabel="PC 1 of z means", ylabel="PC 2", title=f"{label}: latent means")
        ax.title.set_fontsize(9)
        if row == 0:
            fig.legend(
                *ax.get_legend_handles_labels(),
                loc="lower center",
                bbox_to_anchor=(0.5, 0.93 + 0.01 * (3 - len(models))),
                ncol=len(values),
                fontsize=7,
                markerscale=2,
                title="digit label (latent scatter)",
                title_fontsize=7,
                frameon=False,
            )
        originals = x[:n_images]
        recon = model.decode(model.encode(originals)).mean
        pairs = torch.stack([originals.reshape(2, -1, originals.shape[-1]), recon.reshape(2, -1, recon.shape[-1])], 1)
        samples = model.decode(model.sample_latent(2 * n_images)).mean
        for col, (images, name) in enumerate(
            (
                (pairs.reshape(-1, x.shape[-1]), "test (rows 1, 3) / recon. (2, 4)"),
                (samples, "samples E[x|z], z ~ p(z)"),
            ),
            start=1,
        ):
            side = n_images // 2
            sub = grid[row, col].subgridspec(4, side, wspace=0.05, hspace=0.05)
            for i, img in enumerate(images.reshape((-1,) + tuple(shape)).numpy()):
                ax = fig.add_subplot(sub[i // side, i % side])
                ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{label}: {name}", fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=10, y=1.0)
    return save(fig, path)
