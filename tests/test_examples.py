"""Smoke tests: every example's --quick mode runs to the end and writes its outputs."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_example(name, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_quickstart_digits_smoke():
    out = run_example("quickstart_digits.py", "--epochs", "2")
    for name in ("Trace_ELBO", "symmetric=False", "Trace_MIM()"):
        assert name in out
    assert "active units" in out


def test_plug_in_model_quick(tmp_path):
    out = run_example("plug_in_model.py", "--quick", "--out", str(tmp_path))
    assert "mi_aggregate" in out and "knn5_accuracy" in out
    assert (tmp_path / "posterior_mim.png").stat().st_size > 1000
    assert (tmp_path / "posterior_elbo.png").stat().st_size > 1000
