"""A comparison figure: one panel per metric, one bar per objective, error bars over seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyromim.metrics.likelihood import NLL_KEYS, UNRELIABLE_FRACTION, nll_unreliable
from pyromim.plots.figures import pyplot, save

#: y-axis labels of the usual metrics (units and which way is better).
AXIS_LABELS = {
    "nll": "nats per item (lower is better)",
    "nll_bits_per_dim": "bits per dim (lower is better)",
    "mi_ksg": "nats (higher: more informative z)",
    "mi_aggregate": "nats (higher: more informative z)",
    "active_units": "latent dims",
    "knn5_accuracy": "accuracy (higher is better)",
    "recon_error": "mean ||x - x_hat|| (lower is better)",
    "psis_khat_bad_fraction": "share of items (lower is better)",
    "consistency": "R^2 of z from generated x (higher is better)",
    "mi_aggregate_se": "nats (standard error)",
    "consistency_se": "standard error of R^2",
}


def plot_comparison(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    path: str | Path,
    *,
    metrics: Sequence[str],
    labels: Mapping[str, str] | None = None,
    title: str = "",
) -> Path:
    """Bars of ``summary[objective][metric]["mean"]`` with ``["std"]`` error bars.

    An NLL bar of an objective whose mean ``psis_khat_bad_fraction`` exceeds 0.3
    (:func:`pyromim.metrics.nll_unreliable`) is hatched, faded and labelled
    "unreliable", with a note under the figure.

    :param summary: ``{objective: {metric: {"mean", "std", "n"}}}`` as made by
        :func:`pyromim.experiments.summarise`.
    :param metrics: the metrics to show, one panel each (non-finite means are
        left out of their panel).
    :param labels: display names of the objectives.
    """
    plt = pyplot()
    objectives = list(summary)
    labels = dict(labels or {})
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows), squeeze=False)
    colours = [plt.get_cmap("tab10")(i) for i in range(len(objectives))]
    marked = False
    for ax, metric in zip(axes.ravel(), metrics):
        for i, objective in enumerate(objectives):
            stats = summary[objective].get(metric, {})
            mean, std = stats.get("mean", math.nan), stats.get("std", math.nan)
            if not math.isfinite(mean):
                continue
            khat = summary[objective].get("psis_khat_bad_fraction", {}).get("mean")
            unreliable = metric in NLL_KEYS and nll_unreliable(khat)
            ax.bar(
                i,
                mean,
                yerr=std if math.isfinite(std) else None,
                color=colours[i],
                capsize=4,
                label=labels.get(objective, objective),
                hatch="///" if unreliable else None,
                alpha=0.4 if unreliable else 1.0,
            )
            if unreliable:
                marked = True
                ax.annotate(
                    "unreliable",
                    (i, mean),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="darkred",
                )
        ax.set_xticks(range(len(objectives)), [labels.get(o, o) for o in objectives], fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.set_ylabel(AXIS_LABELS.get(metric, metric), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    n = max((s.get("n", 0) for per in summary.values() for s in per.values()), default=0)
    fig.suptitle(title or f"mean and std over {n} seed(s)", fontsize=11)
    fig.tight_layout()
    if marked:
        fig.subplots_adjust(bottom=fig.subplotpars.bottom + 0.06)
        fig.text(
            0.5,
            0.01,
            f"hatched 'unreliable': an NLL with psis_khat_bad_fraction > {UNRELIABLE_FRACTION} "
            "(importance sampling fails; not comparable)",
            ha="center",
            fontsize=8,
            color="darkred",
        )
    return save(fig, path)
