"""Training curves: per-epoch losses, the ``beta`` warm-up and the learning rate."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from pyromim.plots.figures import pyplot, save


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Per-epoch rows (``epoch`` counted from 1) from the CSV log that training writes.

    Lightning writes one line per logging call, with blanks for the other
    columns; the rows of one epoch are merged, and the learning rate (logged at
    the start of an epoch, without an epoch number) goes to the epoch that follows.
    """
    rows: dict[int, dict[str, float]] = {}
    pending: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            values = {k: float(v) for k, v in line.items() if k and v not in ("", None)}
            values.pop("step", None)
            if "epoch" not in values:
                pending.update(values)
                continue
            epoch = int(values.pop("epoch")) + 1
            row = rows.setdefault(epoch, {"epoch": float(epoch)})
            row.update(pending)
            row.update(values)
            pending = {}
    return [rows[k] for k in sorted(rows)]


def plot_training_curves(
    history: Sequence[dict[str, float]],
    path: str | Path,
    *,
    warmup_epochs: int = 0,
    title: str = "",
) -> Path:
    """Two panels: training/validation loss per epoch, and ``beta`` and the learning rate.

    :param history: per-epoch dicts with ``epoch`` and any of ``train_loss``,
        ``val_loss``, ``beta``, ``lr-Adam`` (see :func:`read_metrics_csv`).
    """
    plt = pyplot()
    fig, (ax_loss, ax_sched) = plt.subplots(1, 2, figsize=(10, 3.8))

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(r["epoch"], r[key]) for r in history if key in r and math.isfinite(r[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, label, style in (("train_loss", "training", "-o"), ("val_loss", "validation", "-s")):
        xs, ys = series(key)
        if xs:
            ax_loss.plot(xs, ys, style, ms=3, label=label)
    if warmup_epochs > 0:
        ax_loss.axvline(warmup_epochs, color="grey", ls=":", label=f"end of warm-up (epoch {warmup_epochs})")
    ax_loss.set(xlabel="epoch", ylabel="loss per datum (nats)", title=title or "training curves")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)

    xs, ys = series("beta")
    if xs:
        ax_sched.plot(xs, ys, "-o", ms=3, color="tab:green", label="beta (MIM weight)")
    ax_sched.set(xlabel="epoch", ylabel="beta", ylim=(-0.05, 1.1), title="schedules")
    lr_x, lr_y = series("lr-Adam")
    ax_lr = ax_sched.twinx()
    if lr_x:
        ax_lr.plot(lr_x, lr_y, "-", color="tab:purple", label="learning rate (epoch start)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    handles = ax_sched.get_legend_handles_labels()[0] + ax_lr.get_legend_handles_labels()[0]
    if handles:
        ax_sched.legend(handles=handles, loc="lower right")
    ax_sched.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
