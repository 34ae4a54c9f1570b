import json
import math
import time

import numpy as np
import pytest

from paper.sweep import (
    REFERENCE_MIN_SCALE,
    ResultsFile,
    finished_line,
    load_results,
    run_label,
    run_tasks,
    seed_major,
    summarise_sweep,
    sweep_table,
    task_epochs,
    task_spec,
)
from pyromim.specs import resolve_spec


def test_reference_floor_is_the_reference_codes_std_offset():
    # scale = exp(raw) + 1e-6 in the reference code: sigma >= 1e-6
    assert REFERENCE_MIN_SCALE == 1e-6 == resolve_spec("toy4").model.min_scale


def test_task_spec_applies_width_latent_and_floor():
    spec = task_spec({"spec": "toy4_20", "hidden": 7, "latent_dim": 3, "min_scale": 1e-4})
    assert spec.encoder.hidden == [7] and spec.decoder.hidden == [7]
    assert spec.model.latent_dim == 3 and spec.model.min_scale == 1e-4
    assert task_spec({"spec": "toy4"}).encoder.hidden == [50]


def test_seed_major_finishes_every_setting_of_a_seed_first():
    order = seed_major([5, 20], ["mim", "elbo"], [1, 2])
    assert order[:4] == [(5, "mim", 1), (5, "elbo", 1), (20, "mim", 1), (20, "elbo", 1)]
    assert {t[2] for t in order[4:]} == {2}


def test_results_file_appends_atomically_and_reloads(tmp_path):
    path = tmp_path / "sub" / "results.json"
    results = ResultsFile(path, "demo", {"seeds": [1]})
    assert load_results(path)["runs"] == []
    results.append({"seed": 1, "metrics": {"a": 1.0}})
    results.append({"seed": 2, "error": "boom"})
    data = load_results(path)
    assert data["experiment"] == "demo" and [r["seed"] for r in data["runs"]] == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left
    (tmp_path / "other.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="other.json"):
        load_results(tmp_path / "other.json")


def test_summary_is_mean_and_sample_sd_over_seeds_without_failed_runs():
    runs = [
        {"spec": "toy4", "hidden": 5, "objective": "mim", "seed": s, "metrics": {"m": v}}
        for s, v in ((1, 1.0), (2, 2.0), (3, 4.0))
    ]
    runs += [
        {"spec": "toy4", "hidden": 5, "objective": "elbo", "inverse_h": True, "seed": 1, "metrics": {"m": 3.0}},
        {"spec": "toy4", "hidden": 5, "objective": "elbo", "seed": 1, "error": "x"},
    ]
    summary = summarise_sweep(runs, "hidden", ["m"])
    mean, sd, n = summary[(5, "MIM")]["m"]
    assert (mean, n) == (7 / 3, 3) and math.isclose(sd, np.std([1, 2, 4], ddof=1))
    assert summary[(5, "VAE + H")]["m"] == (3.0, 0.0, 1)
    assert (5, "VAE (ELBO)") not in summary
    table = sweep_table(summary, "hidden units", ["m"])
    assert "| 5 | MIM | 2.333 ± 1.528 (3) |" in table
    assert run_label("mim", True) == "MIM - H" and run_label("amim") == "A-MIM"


def test_run_tasks_skips_everything_after_the_deadline():
    seen = []
    assert run_tasks([{"spec": "toy4"}], seen.append, jobs=1, deadline=time.monotonic() - 1) == 0
    assert seen == []


def test_a_failing_run_is_recorded_not_raised(tmp_path):
    seen = []
    task = {"spec": "no_such_spec", "objective": "mim", "seed": 1, "run_dir": str(tmp_path)}
    assert run_tasks([task], seen.append) == 1  # counted as done: the sweep goes on to the next run
    assert len(seen) == 1 and all(seen[0][key] == value for key, value in task.items())  # the record names its task
    assert "no_such_spec" in seen[0]["error"] and "seconds" in seen[0]


def test_run_tasks_moves_one_bar_over_every_runs_epochs(tmp_path, capsys):
    from pyromim.experiments.console import ProgressBar

    tiny = {"spec": "toy4", "objective": "elbo", "epochs": 2, "n_train": 128, "n_val": 64, "n_test": 64}
    tasks = [
        {**tiny, "seed": 1, "run_dir": str(tmp_path / "tiny_seed1")},
        {"spec": "no_such_spec", "objective": "mim", "seed": 1, "run_dir": str(tmp_path / "broken")},
    ]
    seen = []
    with ProgressBar(sum(task_epochs(t) for t in tasks)) as bar:
        assert run_tasks(tasks, seen.append, progress=bar) == 2
        assert bar.done == 2  # the tiny run's two epochs; the broken spec counts none
    assert "metrics" in seen[0] and "error" in seen[1]
    assert "tiny_seed1" in capsys.readouterr().err


def test_a_run_whose_worker_died_is_reported_in_one_line_without_a_time():
    # run_tasks records a killed worker (out of memory) without "seconds": the sweep's
    # per-run line must not fail on it, or one killed run ends the whole sweep
    died = {"spec": "toy4", "run_dir": "out/runs/toy4_mim_seed3", "error": "worker failed: BrokenProcessPool: ..."}
    assert finished_line(died) == "toy4_mim_seed3: worker failed: BrokenProcessPool: ..."
    done = {"run_dir": "out/runs/toy4_mim_seed1", "seconds": 12.4, "metrics": {"mi_ksg": 1.5, "nll": 2.0}}
    assert finished_line(done) == "toy4_mim_seed1 (12 s): mi_ksg 1.500"


def test_digits_encoder_side_runs_only_that_objective_without_early_stopping(tmp_path):
    from paper.digits import SPECS, build_tasks
    from paper.sweep import SweepOptions

    plain = build_tasks(SweepOptions(seeds=2), tmp_path)
    assert {t["objective"] for t in plain} == {"elbo", "amim", "mim", "mim_score"}
    assert all("patience" not in t for t in plain)  # the spec's early stopping
    held = build_tasks(SweepOptions(seeds=2, flags=frozenset({"encoder_side"})), tmp_path)
    assert [(t["spec"], t["seed"]) for t in held] == [(s, seed) for seed in (1, 2) for s in SPECS]
    assert {(t["objective"], t["patience"]) for t in held} == {("mim_encoder_side", 0)}
    assert len({t["run_dir"] for t in held}) == len(held)
