"""The MIM paper's toy sweeps (``toy4`` / ``toy4_20``): tasks and reports shared by the examples.

Full mode uses the reference settings (the spec's ``[training]`` table: up to
200 epochs, early stopping after 3 epochs without a better validation loss,
beta warm-up 3 epochs, batch 128, Adam 1e-3 with Noam warm-up; 10,000 fresh
points per split) with the reference code's standard-deviation floor
(:data:`paper.sweep.REFERENCE_MIN_SCALE`). Quick mode trains
2 epochs on 500 points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paper.paper_metrics import PAPER_METRICS
from paper.sweep import (
    PANEL_METRICS,
    REFERENCE_MIN_SCALE,
    SweepOptions,
    run_label,
    saved_run_dir,
    seed_major,
    summarise_sweep,
    sweep_table,
)

QUICK_CAPS = {"epochs": 2, "n_train": 500, "n_val": 200, "n_test": 500}


def toy_tasks(
    options: SweepOptions,
    out: Path,
    *,
    spec: str,
    key: str,
    full_settings: Sequence[int],
    quick_settings: Sequence[int],
    objectives: Sequence[str] = ("mim", "elbo"),
    inverse_h: bool = False,
    fixed: Mapping[str, Any] | None = None,
    full_seeds: int = 3,
) -> list[dict[str, Any]]:
    """Tasks of one toy sweep over ``key`` (``"hidden"`` or ``"latent_dim"``), seed-major."""
    if options.settings:
        settings = [int(v) for v in options.settings.split(",")]
    else:
        settings = list(quick_settings if options.quick else full_settings)
    seeds = range(1, 1 + (options.seeds or (1 if options.quick else full_seeds)))
    caps = QUICK_CAPS if options.quick else {}
    tasks = []
    for setting, objective, seed in seed_major(settings, objectives, seeds):
        name = f"{key}{setting}_{objective}{'_invH' if inverse_h else ''}_seed{seed}"
        tasks.append(
            {
                "spec": spec,
                key: setting,
                "min_scale": REFERENCE_MIN_SCALE,
                **dict(fixed or {}),
                "objective": objective,
                "inverse_h": inverse_h,
                "seed": seed,
                **caps,
                "run_dir": str(out / "runs" / name),
            }
        )
    return tasks


def toy_report(
    results: Mapping[str, Any],
    out: Path,
    *,
    key: str,
    x_label: str,
    log_x: bool,
    figure_setting: int,
    reference: str = "",
) -> str:
    """Tables (Markdown) and figures of a toy sweep: ``panels.png`` (the paper's four metrics),
    ``panels_sampled.png`` (reference-style sampled metrics) and ``setting.png`` (data,
    reconstructions and latents of each objective at ``figure_setting``, first seed)."""
    from paper.plots import plot_sweep_panels

    runs = results["runs"]
    summary = summarise_sweep(runs, key, PAPER_METRICS)
    failed = [r for r in runs if "error" in r]
    lines = [f"### {results['experiment']}", "", sweep_table(summary, x_label, PAPER_METRICS), ""]
    if failed:
        lines += [
            f"{len(failed)} run(s) failed: " + "; ".join(f"{Path(r['run_dir']).name}: {r['error']}" for r in failed),
            "",
        ]
    if reference:
        lines += [reference, ""]
    if not summary:
        return "\n".join(lines + ["(no finished runs)"])
    title = f"{results['experiment']}: mean ± 1 sd over seeds"
    plot_sweep_panels(summary, out / "panels.png", metrics=PANEL_METRICS, x_label=x_label, log_x=log_x, title=title)
    plot_sweep_panels(
        summary,
        out / "panels_sampled.png",
        metrics=("recon_error_sampled", "knn5_accuracy_sampled"),
        x_label=x_label,
        log_x=log_x,
        title="reference-style metrics on sampled z / x",
    )
    lines.append(f"Figures: panels.png, panels_sampled.png{_setting_figure(runs, out, key, figure_setting)}")
    return "\n".join(lines)


def _setting_figure(runs: Sequence[Mapping[str, Any]], out: Path, key: str, setting: int) -> str:
    """Draw ``setting.png`` from the saved models of the first seed at ``setting`` (nearest available)."""
    from pyromim.data import load_data
    from pyromim.models import load_model
    from pyromim.plots import plot_setting_runs

    done = [r for r in runs if "metrics" in r]
    if not done:
        return ""
    chosen = min({r[key] for r in done}, key=lambda s: abs(s - setting))
    seed = min(r["seed"] for r in done if r[key] == chosen)
    models = {}
    for r in sorted((r for r in done if r[key] == chosen and r["seed"] == seed), key=lambda r: r["objective"] != "mim"):
        path = saved_run_dir(r, out) / "model.pt"
        if path.exists():
            models[run_label(r["objective"], bool(r.get("inverse_h")))] = load_model(path)
    if not models:
        return " (setting.png skipped: the runs' model.pt files are not here)"
    test = load_data(done[0]["spec"], seed=seed).test
    plot_setting_runs(
        models, test.x, test.labels, out / "setting.png", title=f"{done[0]['spec']}, {key} = {chosen}, seed {seed}"
    )
    return f", setting.png ({key} = {chosen}, seed {seed})"
