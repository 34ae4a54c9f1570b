"""The sweep figure: each metric's mean over seeds against the swept setting, one line per objective."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


#: Axis titles of the paper's metrics.
METRIC_TITLES = {
    "mi_ksg": "KSG MI (nats)",
    "h_q_x": "H_q(x) (nats)",
    "recon_error": "recon. error (posterior mean)",
    "recon_error_sampled": "recon. error (sampled)",
    "knn5_accuracy": "KNN-5 accuracy (means)",
    "knn5_accuracy_sampled": "KNN-5 accuracy (sampled z)",
}
_STYLE = {
    "MIM": "tab:blue",
    "VAE (ELBO)": "tab:red",
    "MIM - H": "tab:cyan",
    "VAE + H": "tab:orange",
    "A-MIM": "tab:green",
}


def plot_sweep_panels(
    summary: Mapping[tuple[Any, str], Mapping[str, tuple[float, float, int]]],
    path: str | Path,
    *,
    metrics: Sequence[str],
    x_label: str,
    log_x: bool = False,
    title: str = "",
) -> Path:
    """One panel per metric: mean against the setting, one line per objective, band = ±1 std over seeds.

    :param summary: :func:`paper.sweep.summarise_sweep`'s result.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.1 * len(metrics), 2.8), squeeze=False)
    labels = sorted(
        {label for _, label in summary}, key=lambda s: (s not in _STYLE, list(_STYLE).index(s) if s in _STYLE else 0, s)
    )
    for ax, metric in zip(axes[0], metrics):
        for label in labels:
            keys = sorted(k for k in summary if k[1] == label)
            xs = np.array([k[0] for k in keys], dtype=float)
            mean = np.array([summary[k][metric][0] for k in keys])
            std = np.array([summary[k][metric][1] for k in keys])
            colour = _STYLE.get(label)
            ax.plot(xs, mean, "o-", ms=3.5, color=colour, label=label)
            ax.fill_between(xs, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        if log_x:
            ax.set_xscale("log")
        ticks = sorted({k[0] for k in summary})
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel(x_label)
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
