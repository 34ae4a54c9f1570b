"""``compare``: train one spec with several objectives over several seeds and tabulate the metrics.

``out_dir`` receives one run directory per pair, ``<objective>/seed<k>/`` (see
:func:`pyromim.experiments.run`), and::

    compare.json   every run's metrics plus the per-objective mean and std over seeds
    compare.md     the side-by-side table (metrics as rows, objectives as columns)
    compare.png    one bar panel per metric, error bars = std over seeds

Called again with the same ``out_dir``, it goes on where it stopped: a run that finished
with the same settings is kept as it is, an unfinished one continues from its
``checkpoints/last.ckpt`` (to the same result as if never interrupted), and a run
directory holding anything else is refused before anything trains, unless ``overwrite``.

The std is the sample standard deviation (``ddof=1``); with one seed it is
not defined and the tables show the mean alone.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyromim._run_dir import RunDirectoryError, check_run_directory
from pyromim.experiments.config import RunConfig
from pyromim.experiments.console import ProgressBar, run_details_hidden
from pyromim.experiments.report import (
    METRIC_NOTES,
    UNRELIABLE_MARK,
    UNRELIABLE_NOTE,
    comparison_table,
    read_checked_json,
    write_json,
    write_text,
)
from pyromim.experiments.runner import METRICS_FILE, RUN_FILE, check_resume, run, run_settings
from pyromim.infer.objectives import compared_objectives, objective_label, objective_name
from pyromim.metrics import EVALUATE_KEYS
from pyromim.models import CheckpointError
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


@dataclass
class _Plan:
    """What :func:`compare` does with one run directory: keep a finished run, resume one, or train anew."""

    out_dir: Path
    config: RunConfig
    resume: Path | None = None
    kept: dict[str, Any] | None = None  # run.json of a finished run
    metrics: dict[str, float] | None = None  # and its metrics.json


def _plan(spec: ModelSpec, config: RunConfig, out_dir: Path) -> _Plan:
    """Decide, before anything trains, what to do with ``out_dir``: a finished run of the same
    settings is kept, an unfinished one goes on from its ``last.ckpt``; a directory holding
    anything else is refused (unless ``overwrite``) with advice in the command's own words."""
    plan = _Plan(out_dir, config)
    last = out_dir / "checkpoints" / "last.ckpt"
    if config.overwrite or not last.is_file():
        check_run_directory(out_dir, overwrite=config.overwrite, resume_hint=False)
        return plan
    trained, _, run_info = run_settings(spec, config)
    try:
        check_resume(last, run_info)
    except CheckpointError:
        raise RunDirectoryError(
            f"{out_dir} holds a run of other settings (or a damaged checkpoint, {last}); pass --overwrite "
            "(overwrite=True from Python) to train it again, or choose another --out (out_dir=)"
        ) from None
    try:
        done = read_checked_json(out_dir / RUN_FILE)
    except (OSError, CheckpointError):
        done = None
    budget = trained.training.epochs
    if done is not None and (done.get("stopped_early") or done.get("epochs_completed", 0) >= budget):
        try:  # the metrics a finished run wrote (none if it was not evaluated)
            metrics_file = out_dir / METRICS_FILE
            plan.metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
            plan.kept = done
            return plan
        except (OSError, ValueError):
            pass  # unreadable: the resume below evaluates again
    plan.resume = last
    return plan


def _kept_run(plan: _Plan, objective: str, seed: int) -> dict[str, Any]:
    """The record of a run finished by an earlier ``compare`` (its run.json and metrics.json)."""
    assert plan.kept is not None
    return {
        "objective": objective,
        "seed": seed,
        "out_dir": plan.out_dir,
        "epochs": plan.kept.get("epochs_completed"),
        "seconds": plan.kept.get("seconds", 0.0),
        "metrics": plan.metrics,
    }


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
    c = (config or RunConfig()).replace(**run_options)
    max_epochs = c.epochs if c.epochs is not None else spec.training.epochs
    pairs = [(s, o) for s in seed_list for o in names]
    # every run directory is looked at before anything trains: finished runs are kept, unfinished ones resumed
    plans = [
        _plan(spec, c.replace(objective=o, seed=s, plots=plots, progress=False), out_dir / o / f"seed{s}")
        for s, o in pairs
    ]
    trained = _train_all(spec, pairs, plans, max_epochs, progress=c.progress)
    runs = trained.runs
    # runs are listed seed by seed; report objectives in the order asked
    runs.sort(key=lambda r: (names.index(r["objective"]), r["seed"]))
    summary = summarise(runs)
    outcome = CompareResult(out_dir, spec.name, runs, summary, is_global_zero=trained.is_global_zero)
    if not trained.is_global_zero:
        return outcome
    _write_comparison(outcome, names, seed_list, plots, start)
    logger.info("compared %d runs in %.0f s; wrote %s", len(pairs), time.perf_counter() - start, out_dir)
    return outcome


@dataclass
class _Trained:
    """The runs :func:`compare` trained or kept, one record each, seed by seed; ``is_global_zero``
    is ``False`` in the extra processes of a multi-device run."""

    runs: list[dict[str, Any]]
    is_global_zero: bool


def _train_all(
    spec: ModelSpec, pairs: list[tuple[int, str]], plans: list[_Plan], max_epochs: int, *, progress: bool
) -> _Trained:
    """Carry out each ``(seed, objective)`` pair's plan: keep a finished run, or train (or resume) it;
    one bar over every run's epochs and one line per finished run, instead of each run's own."""
    runs: list[dict[str, Any]] = []
    is_global_zero = True
    total = len(pairs)
    with ProgressBar(total * max_epochs, enabled=progress) as bar, run_details_hidden():
        for i, ((seed, objective), plan) in enumerate(zip(pairs, plans)):
            label = f"{objective_label(objective)}, seed {seed}"
            ticks = bar.start_run(f"{label} ({i + 1}/{total})", max_epochs)
            if plan.kept is not None:
                runs.append(_kept_run(plan, objective, seed))
                how = "kept (finished earlier)"
            else:
                result = run(spec, plan.config, out_dir=plan.out_dir, resume=plan.resume, callbacks=[ticks])
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
                how = "resumed" if plan.resume is not None else ""
            bar.end_run()
            if is_global_zero:
                logger.info("%d/%d %s: %s%s", i + 1, total, label, f"{how}; " if how else "", run_summary(runs[-1]))
    return _Trained(runs, is_global_zero)


def _write_comparison(
    outcome: CompareResult, names: list[str], seed_list: list[int], plots: bool, start: float
) -> None:
    """Write ``compare.md``, ``compare.json`` and (``plots``) ``compare.png``; set ``outcome``'s table and files."""
    out_dir, summary, runs, spec_name = outcome.out_dir, outcome.summary, outcome.runs, outcome.spec
    metrics = [m for m in EVALUATE_KEYS if any(summary[o][m]["n"] for o in summary)]
    outcome.table = comparison_table(summary, metrics, labels={o: objective_label(o) for o in names})
    seeds_text = ", ".join(map(str, seed_list))
    notes = "\n".join(f"* `{m}`: {METRIC_NOTES[m]}" for m in metrics)
    if UNRELIABLE_MARK in outcome.table:
        notes += f"\n\n{UNRELIABLE_NOTE}."
    markdown = (
        f"# {spec_name}: {', '.join(objective_label(o) for o in names)}\n\n"
        f"Mean ± sample std over seeds {seeds_text} (test part; KNN trained on the training part).\n\n"
        + comparison_table(summary, metrics, labels={o: objective_label(o) for o in names}, markdown=True)
        + f"\n{notes}\n"
    )
    outcome.files["markdown"] = write_text(out_dir / "compare.md", markdown)
    outcome.files["json"] = write_json(
        out_dir / "compare.json",
        {
            "spec": spec_name,
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
            title=f"{spec_name}: mean and std over {len(seed_list)} seed(s)",
        )
