"""``compare``: train one spec with several objectives over several seeds and tabulate the metrics.

``out_dir`` receives one run directory per pair, ``<objective>/seed<k>/`` (see
:func:`pyromim.experiments.run`), and::

    compare.json   every run's metrics plus the per-objective mean and std over seeds
    compare.md     the side-by-side table (metrics as rows, objectives as columns)
    compare.png    one bar panel per metric, error bars = std over seeds

The std is the sample standard deviation (``ddof=1``); with one seed it is
not defined and the tables show the mean alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyromim.experiments.config import RunConfig
from pyromim.experiments.console import ProgressBar, run_details_hidden
from pyromim.experiments.report import (
    METRIC_NOTES,
    UNRELIABLE_MARK,
    UNRELIABLE_NOTE,
    comparison_table,
    write_json,
    write_text,
)
from pyromim.experiments.runner import run
from pyromim.infer.objectives import compared_objectives, objective_label, objective_name
from pyromim.metrics import EVALUATE_KEYS
from pyromim.specs import ModelSpec, resolve_spec

logger = logging.getLogger(__name__)

#: Metrics shown in the comparison figure (the table shows every key).
FIGURE_METRICS = ("nll", "mi_ksg", "mi_aggregate", "active_units", "knn5_accuracy", "recon_error")


@dataclass
class CompareResult:
    """What :func:`compare` produced.

    :ivar out_dir: the comparison directory.
    :ivar spec: name of the spec compared.
    :ivar runs: one dict per run: ``objective``, ``seed``, ``out_dir``,
        ``epochs``, ``seconds``, ``metrics``.
    :ivar summary: ``{objective: {metric: {"mean", "std", "n"}}}``.
    :ivar table: the text table that was printed.
    :ivar files: paths of ``compare.json``, ``compare.md`` and ``compare.png``.
    :ivar is_global_zero: ``False`` in the extra processes of a multi-device run.
    """

    out_dir: Path
    spec: str
    runs: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, float]]]
    table: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    is_global_zero: bool = True


def seed_summary(values: Iterable[float | None]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of one metric over seeds: the mean, the sample std (``ddof=1``;
    NaN for fewer than two values) and the count, leaving out missing and non-finite values
    (e.g. KNN accuracy without labels); no finite value gives a NaN mean."""
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    return {
        "mean": float(np.mean(kept)) if kept else math.nan,
        "std": float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan,
        "n": len(kept),
    }


def summarise(
    runs: Iterable[Mapping[str, Any]], metrics: Sequence[str] = EVALUATE_KEYS
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`seed_summary` of each metric per objective."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        grouped.setdefault(r["objective"], []).append(r.get("metrics") or {})
    return {
        objective: {m: seed_summary(values.get(m) for values in items) for m in metrics}
        for objective, items in grouped.items()
    }


#: Metrics in the one-line summary of each finished run.
SUMMARY_METRICS = ("nll", "mi_ksg", "active_units", "knn5_accuracy")


def run_summary(record: Mapping[str, Any]) -> str:
    """One line for a finished run of :func:`compare`: epochs, seconds and a few metrics."""
    metrics = record.get("metrics") or {}
    shown = [f"{m} {metrics[m]:.3g}" for m in SUMMARY_METRICS if m in metrics and math.isfinite(metrics[m])]
    return f"{record['epochs']} epochs in {record['seconds']:.0f} s" + (f"; {', '.join(shown)}" if shown else "")


def compare(
    spec: str | Path | ModelSpec,
    *,
    out_dir: str | Path,
    objectives: Sequence[str] | None = None,
    seeds: int | Sequence[int] = 3,
    plots: bool = True,
    config: RunConfig | None = None,
    **run_options: Any,
) -> CompareResult:
    """Train ``spec`` with each objective and seed, then tabulate mean and std over seeds.

    :param objectives: names among ``elbo``, ``amim``, ``mim``.
    :param seeds: a count ``N`` (seeds ``0 .. N-1``) or explicit seeds.
    :param plots: write each run's plots and the comparison figure.
    :param config: the runs' settings (:class:`~pyromim.experiments.RunConfig`);
        each run's ``objective`` and ``seed`` come from ``objectives`` and ``seeds``.
    :param run_options: :class:`~pyromim.experiments.RunConfig` fields by name, overriding
        ``config``'s (``data``, ``epochs``, ``n_train``, ``devices``, ``progress`` ...).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    spec = resolve_spec(spec)
    names = [objective_name(o) for o in (compared_objectives() if objectives is None else objectives)]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"objectives must be distinct and non-empty, got {names}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("give at least one seed")
    runs: list[dict[str, Any]] = []
    is_global_zero = True
    total = len(names) * len(seed_list)
    c = (config or RunConfig()).replace(**run_options)
    max_epochs = c.epochs if c.epochs is not None else spec.training.epochs
    # one bar over every run's epochs and one line per finished run, instead of each run's own
    with ProgressBar(total * max_epochs, enabled=c.progress) as bar, run_details_hidden():
        for i, (seed, objective) in enumerate((s, o) for s in seed_list for o in names):
            label = f"{objective_label(objective)}, seed {seed}"
            ticks = bar.start_run(f"{label} ({i + 1}/{total})", max_epochs)
            result = run(
                spec,
                c,
                objective=objective,
                seed=seed,
                out_dir=out_dir / objective / f"seed{seed}",
                plots=plots,
                progress=False,
                callbacks=[ticks],
            )
            bar.end_run()
            is_global_zero = result.is_global_zero
            runs.append(
                {
                    "objective": objective,
                    "seed": seed,
                    "out_dir": result.out_dir,
                    "epochs": result.fit.epochs_completed,
                    "seconds": round(result.seconds, 2),
                    "metrics": result.metrics,
                }
            )
            if is_global_zero:
                logger.info("%d/%d %s: %s", i + 1, total, label, run_summary(runs[-1]))
    # runs are listed seed by seed; report objectives in the order asked
    runs.sort(key=lambda r: (names.index(r["objective"]), r["seed"]))
    summary = summarise(runs)
    outcome = CompareResult(out_dir, spec.name, runs, summary, is_global_zero=is_global_zero)
    if not is_global_zero:
        return outcome
    metrics = [m for m in EVALUATE_KEYS if any(summary[o][m]["n"] for o in summary)]
    outcome.table = comparison_table(summary, metrics, labels={o: objective_label(o) for o in names})
    seeds_text = ", ".join(map(str, seed_list))
    notes = "\n".join(f"* `{m}`: {METRIC_NOTES[m]}" for m in metrics)
    if UNRELIABLE_MARK in outcome.table:
        notes += f"\n\n{UNRELIABLE_NOTE}."
    markdown = (
        f"# {spec.name}: {', '.join(objective_label(o) for o in names)}\n\n"
        f"Mean ± sample std over seeds {seeds_text} (test part; KNN trained on the training part).\n\n"
        + comparison_table(summary, metrics, labels={o: objective_label(o) for o in names}, markdown=True)
        + f"\n{notes}\n"
    )
    outcome.files["markdown"] = write_text(out_dir / "compare.md", markdown)
    outcome.files["json"] = write_json(
        out_dir / "compare.json",
        {
            "spec": spec.name,
            "objectives": names,
            "seeds": seed_list,
            "summary": summary,
            "runs": runs,
            "seconds": round(time.perf_counter() - start, 2),
        },
    )
    if plots:
        from pyromim.plots import plot_comparison

        outcome.files["figure"] = plot_comparison(
            summary,
            out_dir / "compare.png",
            metrics=[m for m in FIGURE_METRICS if m in metrics],
            labels={o: objective_label(o) for o in names},
            title=f"{spec.name}: mean and std over {len(seed_list)} seed(s)",
        )
    logger.info("compared %d runs in %.0f s; wrote %s", total, time.perf_counter() - start, out_dir)
    return outcome
