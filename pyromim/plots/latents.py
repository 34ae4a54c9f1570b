"""The latent space: posterior means coloured by label, with posterior ellipses for 2-D latents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pyromim.data import ArrayDataset
from pyromim.plots.figures import label_colours, pyplot, save

if TYPE_CHECKING:
    from pyromim.models import LatentVariableModel


@torch.no_grad()
def plot_latent_space(
    model: LatentVariableModel,
    data: ArrayDataset,
    path: str | Path,
    *,
    max_points: int = 2000,
    max_ellipses: int = 150,
    prior_circles: bool = True,
    title: str = "",
) -> Path:
    """Scatter of the posterior means ``mu(x)`` of ``q(z | x)`` for up to ``max_points`` items.

    2-D latents: each of the first ``max_ellipses`` items also gets its
    posterior's 1-sigma ellipse (axes ``sigma_1``, ``sigma_2``, as the guide is
    diagonal), and, if ``prior_circles``, the 1- and 2-sigma circles of
    ``N(0, I)`` are drawn for scale.  Higher-dimensional latents are projected
    on the first two principal components of the means (no ellipses).
    Points are coloured by ``data.labels`` (one colour when there are none).

    :param model: a :class:`~pyromim.LatentVariableModel` (needs ``posterior(x)``).
    """
    plt = pyplot()
    from matplotlib.patches import Circle, Ellipse

    x = data.x[:max_points]
    loc, scale = (t.numpy() for t in model.posterior(x))
    dim = loc.shape[-1]
    fig, ax = plt.subplots(figsize=(6, 5.5))
    if dim > 2:
        centred = loc - loc.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T
        xlabel, ylabel = "PC 1 of posterior means", "PC 2 of posterior means"
    elif dim == 1:
        points = np.stack([loc[:, 0], np.zeros(len(loc))], 1)
        xlabel, ylabel = "z (posterior mean)", ""
    else:
        points = loc
        xlabel, ylabel = "z1 (posterior mean)", "z2 (posterior mean)"
    labels = None if data.labels is None else data.labels[:max_points].numpy()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, color="tab:blue", label="posterior means")
        colours = ["tab:blue"] * len(points)
    else:
        values, cmap = label_colours(labels)
        index = {v: i for i, v in enumerate(values)}
        colours = [cmap(index[int(v)] % cmap.N) for v in labels]
        for v in values:
            mask = labels == v
            ax.scatter(
                points[mask, 0], points[mask, 1], s=6, alpha=0.6, color=cmap(index[v] % cmap.N), label=f"label {v}"
            )
    if dim == 2:
        for i in range(min(max_ellipses, len(loc))):
            ax.add_patch(
                Ellipse(
                    tuple(loc[i]), 2 * scale[i, 0], 2 * scale[i, 1], fill=False, edgecolor=colours[i], lw=0.7, alpha=0.7
                )
            )
        ax.plot([], [], color="grey", lw=0.7, label=f"q(z|x) 1-sigma ellipses ({min(max_ellipses, len(loc))} points)")
        if prior_circles:
            for r in (1, 2):
                ax.add_patch(Circle((0, 0), r, fill=False, ls="--", lw=1, edgecolor="black", alpha=0.5))
            ax.plot([], [], "k--", lw=1, alpha=0.5, label="N(0, I) 1- and 2-sigma")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or f"latent space ({dim}-D) of {data.name}")
    ax.legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return save(fig, path)
