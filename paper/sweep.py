"""Sweeps of independent runs over (setting, objective, seed), in worker processes, with incremental results.

A *task* is a JSON-able dict naming one run::

    {"spec": "toy4", "hidden": 50, "objective": "mim", "seed": 1, "run_dir": "...", ...}

optional keys: ``hidden`` (the encoder's and decoder's hidden widths, one
layer), ``latent_dim``, ``min_scale``, ``standardize`` (spec changes); ``inverse_h`` (the
joint-entropy ablation); ``epochs``, ``n_train``, ``n_val``, ``n_test`` (caps);
``measure``: ``"paper"`` (:func:`paper.paper_metrics.paper_metrics`, default)
or ``"evaluate"`` (:func:`pyromim.metrics.evaluate` with ``num_samples``
importance samples, plus ``h_q_x``); ``extra``: ``"module:function"``, called as
``function(result, task)`` after the measurement, its dict of further metrics
merged in (:func:`pyromim.experiments.run`'s result); ``plots`` (the run's own PNGs). Every key
that names a :class:`pyromim.experiments.RunConfig` field (``lr``, ``batch_size``,
``devices`` ...) sets that field.

:func:`measure` trains and measures one task and returns its *record*: the
task plus ``metrics``, ``epochs_completed``, ``stopped_early`` and ``seconds``
(or ``error``). :func:`run_tasks` runs many tasks in worker processes (one
thread each) and hands every record, as it finishes, to a callback;
:class:`ResultsFile` appends records to a JSON file atomically, so a sweep
stopped at any moment leaves every finished run readable.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import json
import logging
import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyromim.experiments import RunConfig, objective_label, render_table, seed_summary, write_json
from pyromim.experiments.console import ProgressBar

logger = logging.getLogger(__name__)

#: Task keys that are :class:`pyromim.experiments.RunConfig` fields.
RUN_SETTINGS = tuple(RunConfig.settings())


def task_spec(task: Mapping[str, Any]) -> Any:
    """The task's catalogue spec with its ``hidden`` / ``latent_dim`` / ``min_scale`` / ``standardize`` changes."""
    from pyromim.specs import resolve_spec

    spec = resolve_spec(task["spec"])
    if task.get("hidden") is not None:
        width = [int(task["hidden"])]
        spec = spec.replace(
            encoder=dataclasses.replace(spec.encoder, hidden=width),
            decoder=dataclasses.replace(spec.decoder, hidden=width),
        )
    model_changes = {k: task[k] for k in ("latent_dim", "min_scale") if task.get(k) is not None}
    if model_changes:
        spec = spec.replace(model=dataclasses.replace(spec.model, **model_changes))
    if task.get("standardize") is not None:
        spec = spec.replace(data=dataclasses.replace(spec.data, standardize=bool(task["standardize"])))
    return spec


def run_label(objective: str, inverse_h: bool = False) -> str:
    """Legend name of an objective: ``"MIM"``, ``"VAE (ELBO)"``, ``"MIM - H"``, ``"VAE + H"``."""
    label = objective_label(objective)
    if inverse_h:
        label = "VAE + H" if objective == "elbo" else f"{label} - H"
    return label


def measure(task: Mapping[str, Any], callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train and measure one task (see the module docstring); errors are caught into ``record["error"]``.

    The run and its measurements share a Pyro param store of their own, so the
    trained model's parameters never meet another task's. ``callbacks`` go to the
    training (a progress bar's epoch ticks).
    """
    import pyro

    with pyro.get_param_store().scope():
        return _measure(task, callbacks)


def task_epochs(task: Mapping[str, Any]) -> int:
    """The most epochs ``task`` trains for: its ``epochs`` cap, else its spec's (0 for a spec that
    cannot be read: the run records that error itself)."""
    from pyromim.specs import SpecError

    if task.get("epochs"):
        return int(task["epochs"])
    try:
        return int(task_spec(task).training.epochs)
    except SpecError:
        return 0


def _measure(task: Mapping[str, Any], callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    start = time.perf_counter()
    record = dict(task)
    try:
        from paper.paper_metrics import paper_metrics
        from pyromim.experiments import run
        from pyromim.metrics import marginal_entropy

        full = task.get("measure", "paper") == "evaluate"
        # the task's keys that name run settings (objective, seed, epochs, caps, ...) set them
        settings = {key: task[key] for key in RUN_SETTINGS if key in task}
        # a task is run again only when it has no result: its directory holds at most an interrupted run
        config = RunConfig(evaluate=full, plots=False, progress=False, overwrite=True).replace(**settings)
        result = run(task_spec(task), config, out_dir=task["run_dir"], callbacks=callbacks)
        if full:
            metrics = dict(result.metrics or {})
            metrics["h_q_x"] = marginal_entropy(result.model.model, result.model.guide, result.data.test.x).entropy
        else:
            metrics = paper_metrics(result.model, result.data)
        if task.get("extra"):
            metrics.update(extra_measure(task["extra"])(result, task))
        record.update(
            metrics={k: float(v) for k, v in metrics.items()},
            epochs_completed=result.fit.epochs_completed,
            stopped_early=bool(result.fit.stopped_early),
            plots=sorted(str(p) for p in result.plots),
        )
    except Exception as err:  # a failed run is recorded, the sweep goes on
        record["error"] = f"{type(err).__name__}: {err}"
        logger.error("run %s failed:\n%s", task.get("run_dir"), traceback.format_exc())
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def extra_measure(name: str) -> Callable[[Any, Mapping[str, Any]], Mapping[str, float]]:
    """The function a task's ``extra`` names, ``"module:function"`` (raises naming the task key if it is not one)."""
    import importlib

    module, _, function = name.partition(":")
    if not module or not function:
        raise ValueError(f"task key 'extra' must read 'module:function', got {name!r}")
    return getattr(importlib.import_module(module), function)


def quiet_worker() -> None:
    """Worker set-up: one thread (parallelism comes from the processes), no per-run console chatter."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "pyromim"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_tasks(
    tasks: Sequence[Mapping[str, Any]],
    on_result: Callable[[dict[str, Any]], None],
    *,
    jobs: int = 1,
    deadline: float | None = None,
    progress: Any = None,
) -> int:
    """Run ``tasks`` with :func:`measure` in ``jobs`` worker processes; call ``on_result`` with each record.

    :param deadline: a ``time.monotonic()`` time; runs still going then are
        stopped (their worker processes terminated) and runs not started are
        skipped, so the caller can write what finished (with ``jobs=1`` the runs are
        in this process, and the one in progress at the deadline finishes first).
    :param progress: a :class:`pyromim.experiments.console.ProgressBar` over
        :func:`task_epochs` of every task: it moves per epoch with ``jobs=1``, per
        finished run with worker processes.
    :returns: the number of runs finished.
    """
    done = 0
    if jobs <= 1:
        for task in tasks:
            if deadline is not None and time.monotonic() > deadline:
                break
            if progress is None:
                record = measure(task)
            else:
                record = measure(task, [progress.start_run(Path(task["run_dir"]).name, task_epochs(task))])
                progress.end_run()
            on_result(record)
            done += 1
        return done
    context = multiprocessing.get_context("spawn")
    pool = futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=quiet_worker)
    pending = {pool.submit(measure, dict(task)): task for task in tasks}
    try:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        for future in futures.as_completed(pending, timeout=timeout):
            try:
                record = future.result()
            except Exception as err:  # a worker died (killed, out of memory): record it, go on
                record = {
                    **pending[future],
                    "error": f"worker failed: {type(err).__name__}: {err} (a worker that ends abruptly was "
                    "usually killed for memory: run fewer --jobs)",
                }
            if progress is not None:
                progress.start_run(Path(record["run_dir"]).name, task_epochs(record))
                progress.end_run()
            on_result(record)
            done += 1
    except futures.TimeoutError:
        logger.warning("time is up: %d of %d runs finished; stopping the others", done, len(tasks))
        for future in pending:
            future.cancel()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def finished_line(record: Mapping[str, Any]) -> str:
    """One line for a finished run: its name, seconds (when known) and panel metrics or error."""
    what = record.get("error") or ", ".join(f"{k} {v:.3f}" for k, v in record["metrics"].items() if k in PANEL_METRICS)
    seconds = record.get("seconds")  # a worker that died has none
    took = f" ({seconds:.0f} s)" if seconds is not None else ""
    return f"{Path(record['run_dir']).name}{took}: {what}"


class ResultsFile:
    """``results.json``: ``{"experiment", "settings", "runs": [record, ...]}``, rewritten atomically per record."""

    def __init__(self, path: str | Path, experiment: str, settings: Mapping[str, Any], runs: Iterable[dict] = ()):
        self.path = Path(path)
        self.data = {"experiment": experiment, "settings": dict(settings), "runs": list(runs)}
        self._write()

    def append(self, record: Mapping[str, Any]) -> None:
        self.data["runs"].append(dict(record))
        self._write()

    def _write(self) -> None:
        write_json(self.path, self.data)


def saved_run_dir(record: Mapping[str, Any], out: str | Path) -> Path:
    """A run's directory: as recorded, or ``out/runs/<name>`` when the results folder has been moved."""
    recorded = Path(record["run_dir"])
    return recorded if recorded.exists() else Path(out) / "runs" / recorded.name


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` written by :class:`ResultsFile` (raises naming the file if it is not one)."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "runs" not in data:
        raise ValueError(f"{path}: not a sweep results file (no 'runs' list); give the results.json an example wrote")
    return data


def summarise_sweep(
    runs: Iterable[Mapping[str, Any]], by: str | None, metrics: Sequence[str]
) -> dict[tuple[Any, str], dict[str, tuple[float, float, int]]]:
    """``{(setting, label): {metric: (mean, std, n)}}`` over seeds, for the runs without errors.

    :param by: the task key that varies (``"hidden"``, ``"latent_dim"``) or ``None``
        (then the setting is the spec name).
    """
    groups: dict[tuple[Any, str], list[Mapping[str, Any]]] = {}
    for r in runs:
        if not isinstance(r.get("metrics"), Mapping):  # failed runs carry "error" instead
            continue
        key = (r.get(by) if by else r["spec"], run_label(r["objective"], bool(r.get("inverse_h"))))
        groups.setdefault(key, []).append(r["metrics"])
    out = {}
    for key, items in sorted(groups.items(), key=lambda kv: (str(type(kv[0][0])), kv[0])):
        stats = {}
        for m in metrics:
            s = seed_summary(i.get(m) for i in items)
            stats[m] = (s["mean"], s["std"] if s["n"] > 1 else 0.0, int(s["n"]))
        out[key] = stats
    return out


def sweep_table(
    summary: Mapping[tuple[Any, str], Mapping[str, tuple[float, float, int]]], setting_name: str, metrics: Sequence[str]
) -> str:
    """A Markdown table: one row per (setting, objective), ``mean ± std (n seeds)`` per metric."""
    rows = []
    for (setting, label), stats in summary.items():
        cells = [str(setting), label]
        for m in metrics:
            mean, std, n = stats[m]
            cells.append("n/a" if n == 0 else f"{mean:.3f} ± {std:.3f}" + (f" ({n})" if m == metrics[0] else ""))
        rows.append(cells)
    header = [setting_name, "objective", *metrics]
    return render_table(header, rows, markdown=True, left=range(len(header))).rstrip("\n")


#: The reference code's ``--min-logvar 6`` adds ``10**-6`` to the predicted standard
#: deviations (``scale = exp(raw) + 1e-6``): a floor of ``sigma >= 1e-6``.
REFERENCE_MIN_SCALE = 1e-6

#: The metrics of the paper's four toy panels, and the reference-style sampled variants.
PANEL_METRICS = ("mi_ksg", "h_q_x", "recon_error", "knn5_accuracy")


def seed_major(settings: Sequence[Any], objectives: Sequence[Any], seeds: Sequence[int]) -> list[tuple[Any, Any, int]]:
    """All ``(setting, objective, seed)`` triples, every setting of a seed before the next seed
    (so a sweep stopped early has whole seeds of every setting)."""
    return [(s, o, seed) for seed in seeds for s in settings for o in objectives]


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """What a sweep's ``build_tasks(options, out)`` is told: the command line's choices, or the driver's.

    :param quick: a few small runs (seconds), a smoke test.
    :param seeds: number of seeds (``None``: the experiment's default).
    :param settings: comma-separated swept values (``None``: the experiment's default).
    :param flags: the experiment's own on/off options that are on (``{"raw"}``).
    """

    quick: bool = False
    seeds: int | None = None
    settings: str | None = None
    flags: frozenset[str] = frozenset()


def sweep_cli(
    experiment: str,
    build_tasks: Callable[[SweepOptions, Path], list[dict[str, Any]]],
    report: Callable[[Mapping[str, Any], Path], str],
    argv: Sequence[str] | None = None,
    description: str = "",
    flags: Mapping[str, str] | None = None,
) -> int:
    """The command line shared by the paper examples.

    ``--quick`` (seconds), ``--jobs N`` worker processes, ``--out DIR``
    (``DIR/results.json``, figures, ``DIR/results.md``), ``--seeds N``,
    ``--settings a,b,c`` (the swept values), ``--epochs N`` (a cap), ``--budget SECONDS`` (stop runs
    still going then, and report what finished), ``--replot DIR/results.json``
    (tables and figures from saved results, no training).

    :param build_tasks: ``(options, out_dir) -> tasks``, ``options`` a :class:`SweepOptions`.
    :param report: ``(results, out_dir) -> markdown`` (writes the figures).
    :param flags: the example's own on/off options, ``{"--name": "help"}`` (``"name" in options.flags``).
    """
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few small runs (seconds): a smoke test")
    parser.add_argument("--jobs", type=int, default=1, help="independent runs in this many worker processes")
    parser.add_argument("--out", type=Path, default=Path("results") / experiment, help="output folder")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (1, 2, ...)")
    parser.add_argument("--settings", type=str, default=None, help="comma-separated swept values")
    parser.add_argument("--epochs", type=int, default=None, help="cap on epochs (default: the spec's, 200)")
    parser.add_argument("--budget", type=float, default=None, help="wall-clock seconds; unfinished runs are dropped")
    parser.add_argument("--replot", type=Path, default=None, help="results.json to re-plot (no training)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run)")
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args(argv)
    if args.replot is not None:
        out = args.replot.parent
        text = report(load_results(args.replot), out)
    else:
        out = args.out
        start = time.monotonic()
        on = frozenset(
            f.lstrip("-").replace("-", "_") for f in (flags or {}) if getattr(args, f.lstrip("-").replace("-", "_"))
        )
        options = SweepOptions(quick=args.quick, seeds=args.seeds, settings=args.settings, flags=on)
        tasks = build_tasks(options, out)
        if args.epochs is not None:
            tasks = [{**t, "epochs": min(args.epochs, t.get("epochs") or args.epochs)} for t in tasks]
        results = ResultsFile(
            out / "results.json",
            experiment,
            {
                "quick": args.quick,
                "seeds": sorted({t["seed"] for t in tasks}),
                "jobs": args.jobs,
                "epochs_cap": args.epochs,
                "budget_s": args.budget,
                "tasks": len(tasks),
            },
        )
        print(f"{experiment}: {len(tasks)} runs with {args.jobs} worker(s) -> {out}", flush=True)
        # one bar over every run's epochs (on stderr) and one line per finished run above it
        bar = ProgressBar(sum(task_epochs(t) for t in tasks), enabled=not args.no_progress)

        def on_result(record: dict[str, Any]) -> None:
            results.append(record)
            bar.write(f"[{len(results.data['runs'])}/{len(tasks)}] {finished_line(record)}")

        deadline = None if args.budget is None else start + args.budget
        with bar:
            run_tasks(tasks, on_result, jobs=args.jobs, deadline=deadline, progress=bar)
        text = report(results.data, out)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
