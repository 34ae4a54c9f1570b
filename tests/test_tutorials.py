"""The documentation's tutorials run, in their fast mode, and show what their pages say they show."""

import math
import pathlib
import re

import pytest
from test_examples import run_example

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorials"


def run_tutorial(name, tmp_path):
    """The tutorial in its fast mode, writing under ``tmp_path``."""
    env = {"PYROMIM_TUTORIAL_FAST": "1", "PYROMIM_TUTORIAL_OUT": str(tmp_path)}
    return run_example(str(TUTORIALS / name), env=env, cwd=tmp_path)


def _rows(out, first_word):
    """``{label: [numbers]}`` of the printed table rows whose label starts with ``first_word``."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith(first_word):
            rows[parts[0]] = [float(p.rstrip("%")) for p in parts[1:]]
    return rows


def test_elbo_to_mim_prints_every_metric_for_both_losses(tmp_path):
    from pyromim.metrics import EVALUATE_KEYS

    out = run_tutorial("elbo_to_mim.py", tmp_path)
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert list(table) == list(EVALUATE_KEYS), out
    assert all(len(values) == 2 and all(math.isfinite(float(v)) for v in values) for values in table.values())


def test_specs_and_cli_trains_each_variant_from_the_command_line(tmp_path):
    out = run_tutorial("specs_and_cli.py", tmp_path)
    assert "did you mean 'mixture'" in out
    runs = ("negbin_mixture", "poisson_mixture", "negbin_normal")
    assert set(_rows(out, "negbin") | _rows(out, "poisson")) == set(runs)
    for run in runs:
        assert (tmp_path / run / "metrics.json").is_file()
        assert (tmp_path / run / "model.pt").is_file()
    written = (tmp_path / "poisson_mixture.toml").read_text()
    assert 'likelihood = "poisson"' in written and 'prior = "mixture"' in written


def test_metrics_and_diagnostics_matches_its_closed_forms(tmp_path):
    out = run_tutorial("metrics_and_diagnostics.py", tmp_path)
    exact_nll = float(re.search(r"exact NLL ([0-9.]+)", out).group(1))
    psis = {float(m.group(1)): m for m in re.finditer(r"^\s+([0-9.]+)\s+([0-9.]+)\s+(-?[0-9.]+)", out, re.M)}
    # the exact posterior as proposal: every weight equals p(x), so the estimate is exact
    assert float(psis[1.0].group(2)) == pytest.approx(exact_nll, abs=1e-3)
    # a too-narrow proposal underestimates log p(x) (Jensen): the NLL comes out too high
    assert float(psis[0.2].group(3)) > 0.1
    # the exact mutual information of the posterior-width encoder, 1/2 log(1 + 16)
    row = re.search(r"posterior-width encoder\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert float(row.group(1)) == pytest.approx(0.5 * math.log(17.0), abs=1e-3)
    assert float(row.group(3)) == pytest.approx(0.5 * math.log(17.0), abs=0.3)
    # columns of noise leave the information unchanged: the density-based estimate keeps it, KSG loses most of it
    noisy = re.search(r"x with 10 noise columns\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert float(noisy.group(1)) == pytest.approx(0.5 * math.log(17.0), abs=1e-3)
    assert float(noisy.group(3)) == pytest.approx(0.5 * math.log(17.0), abs=0.3)
    assert float(noisy.group(2)) < 0.5 * math.log(17.0) - 0.5
    # the aggregate estimate never exceeds log N
    for match in re.finditer(r"encoder[^\n]*?\s([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", out, re.M):
        assert float(match.group(3)) <= float(match.group(4)) + 1e-6
