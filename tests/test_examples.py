"""Smoke tests: every example's and paper experiment's --quick mode runs to the end and writes its outputs."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_example(name, *args, timeout=300, env=None, cwd=ROOT):
    """``examples/<name>`` (or any script by absolute path) as a script, or ``paper.<module>``
    (``"paper.digits"``) as a module; ``env`` adds environment variables."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", **(env or {}))
    command = ["-m", name] if name.startswith("paper.") else [str(ROOT / "examples" / name)]
    proc = subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_quickstart_digits_smoke():
    out = run_example("quickstart_digits.py", "--epochs", "2")
    for name in ("Trace_ELBO", "symmetric=False", "Trace_MIM()"):
        assert name in out
    assert "active units" in out
    # each objective's row: its active units out of the 8 latent dims, and a finite positive NLL in nats
    rows = [line for line in out.splitlines() if line.startswith(("VAE (", "A-MIM (", "MIM ("))]
    assert len(rows) == 3, out
    for row in rows:
        active, _std, _knn, _recon, nll, _time = row.split()[-6:]
        assert active.endswith("/8") and 0 <= int(active[:-2]) <= 8, row
        assert math.isfinite(float(nll)) and float(nll) > 0, row


def test_plug_in_model_quick(tmp_path):
    out = run_example("plug_in_model.py", "--quick", "--out", str(tmp_path))
    assert "mi_aggregate" in out and "knn5_accuracy" in out
    assert (tmp_path / "posterior_mim.png").stat().st_size > 1000
    assert (tmp_path / "posterior_elbo.png").stat().st_size > 1000


def _results(folder):
    data = json.loads((folder / "results.json").read_text())
    assert data["runs"] and all("metrics" in r for r in data["runs"]), data["runs"]
    return data


@pytest.mark.parametrize("name", ["toy_expressiveness", "toy_bottleneck", "entropy_ablation"])
def test_toy_sweep_examples_quick(tmp_path, name):
    out = run_example(f"paper.{name}", "--quick", "--out", str(tmp_path))
    data = _results(tmp_path)
    assert len(data["runs"]) == 4  # 2 settings x 2 objectives x 1 seed
    keys = {"mi_ksg", "h_q_x", "recon_error", "knn5_accuracy", "recon_error_sampled", "knn5_accuracy_sampled"}
    assert all(set(r["metrics"]) == keys for r in data["runs"])
    assert all(math.isfinite(v) for r in data["runs"] for v in r["metrics"].values())
    if name == "entropy_ablation":
        assert {r["inverse_h"] for r in data["runs"]} == {True} and "VAE + H" in out and "MIM - H" in out
    for figure in ("panels.png", "panels_sampled.png", "setting.png"):
        assert (tmp_path / figure).stat().st_size > 5000
    assert "| MIM" in (tmp_path / "results.md").read_text()
    # results.json stays compact: settings and scalar metrics, no per-datum arrays
    assert (tmp_path / "results.json").stat().st_size < 20_000
    if name == "toy_expressiveness":  # --replot redraws tables and figures without training
        (tmp_path / "panels.png").unlink()
        replotted = run_example(f"paper.{name}", "--replot", str(tmp_path / "results.json"))
        assert (tmp_path / "panels.png").stat().st_size > 5000 and "| 5 | MIM |" in replotted
        assert len(_results(tmp_path)["runs"]) == 4


def test_digits_quick(tmp_path):
    out = run_example("paper.digits", "--quick", "--out", str(tmp_path))
    data = _results(tmp_path)
    assert {r["objective"] for r in data["runs"]} == {"elbo", "amim", "mim", "mim_score"}
    assert all({"nll", "mi_ksg", "knn5_accuracy", "consistency", "h_q_x"} <= set(r["metrics"]) for r in data["runs"])
    assert (tmp_path / "digits_normal.png").stat().st_size > 5000 and "A-MIM" in out


def test_reproduce_paper_driver_quick_in_worker_processes(tmp_path):
    # the pool path: two spawned workers, results appended per run, figures at the end
    out = run_example(
        "paper.reproduce_paper", "--quick", "--jobs", "2", "--only", "entropy_ablation", "--out", str(tmp_path)
    )
    folder = tmp_path / "entropy_ablation"
    assert len(_results(folder)["runs"]) == 4 and "entropy_ablation 4/4" in out
    assert (folder / "panels.png").exists() and "MIM - H" in (tmp_path / "results.md").read_text()
