"""paper.annealed_nll: both estimators on a trained run, the table's marks and ratios, refusals."""

from __future__ import annotations

import json
import math
import pathlib

import pytest

from paper.annealed_nll import annealed_table, main
from pyromim.cli import main as cli_main

TINY = ["--epochs", "1", "--n-train", "256", "--n-val", "64", "--n-test", "64", "--num-samples", "10", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny toy4 runs of seed 1: A-MIM and the ELBO (the reference)."""
    root = tmp_path_factory.mktemp("annealed")
    for objective in ("amim", "elbo"):
        args = ["train", "toy4", "--objective", objective, "--seed", "1", "--no-plots", *TINY]
        assert cli_main([*args, "--out", str(root / objective)]) == 0
    return root


def test_a_run_is_estimated_by_both_estimators_on_the_same_items(runs, tmp_path):
    out = tmp_path / "annealed.json"
    content = main(
        [str(runs / "amim"), "--reference", str(runs / "elbo")]
        + ["--n-test", "12", "--steps", "2,4", "--chains", "24", "--out", str(out)]
    )
    assert json.loads(out.read_text()) == content
    run, reference = content["runs"]
    assert (run["spec"], run["objective"], run["seed"], run["reference"]) == ("toy4", "amim", 1, False)
    assert reference["reference"] and "ais" not in reference
    assert set(run["ais"]) == {"2", "4"}
    for estimate in [run["is"], reference["is"], *run["ais"].values()]:
        assert math.isfinite(estimate["nll"]) and 0.0 <= estimate["khat_bad_fraction"] <= 1.0
    table = annealed_table(content)
    ratio = run["ais"]["4"]["nll"] / reference["is"]["nll"]
    assert "| amim | 1 | " in table and f"{ratio:.3f}x |" in table and "reference |" in table
    assert main(["--table", str(out)]) == content


def test_a_few_items_are_enough_when_only_the_nll_is_asked_for(runs):
    """The KSG estimate needs 6 items; an NLL alone does not."""
    from pyromim.experiments import evaluate_run

    metrics = evaluate_run(runs / "elbo", n_test=3, keys=("nll",), num_samples=10).metrics
    assert set(metrics) == {"nll"} and math.isfinite(metrics["nll"])
    with pytest.raises(Exception, match="too few to evaluate"):
        evaluate_run(runs / "elbo", n_test=3, num_samples=10)


def test_the_table_marks_unreliable_estimates_and_divides_by_the_seeds_reference():
    def estimate(nll, share):
        return {"nll": nll, "khat_bad_fraction": share, "seconds": 1.0}

    content = {
        "experiment": "annealed_nll",
        "settings": {"n_test": 10, "steps": [100], "chains": 32, "is_samples": 1000},
        "runs": [
            {"run_dir": "r/amim", "spec": "s", "objective": "amim", "seed": 2, "reference": False,
             "is": estimate(45.0, 0.9), "ais": {"100": estimate(44.0, 0.1)}},
            {"run_dir": "r/other", "spec": "s", "objective": "amim", "seed": 3, "reference": False,
             "is": estimate(45.0, 0.9), "ais": {"100": estimate(44.0, 0.31)}},
            {"run_dir": "r/elbo", "spec": "s", "objective": "elbo", "seed": 2, "reference": True, "is": estimate(40.0, 0.0)},
        ],
    }  # fmt: skip
    rows = {line.split(" | ")[0][2:]: line for line in annealed_table(content).splitlines()[2:]}
    assert "45.00 (0.90) invalid | 44.00 (0.10) | 1.100x |" in rows["amim"]
    assert "44.00 (0.31) invalid |  |" in rows["other"]  # no reference of seed 3: no ratio
    assert rows["elbo"].endswith("40.00 (0.00) |  | reference |")


def test_what_it_cannot_use_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a run directory"):
        main([str(tmp_path), "--steps", "2"])
    for bad in (["--steps", "a,b"], ["--steps", "0"], ["--chains", "20"]):
        with pytest.raises(SystemExit):
            main([str(tmp_path), *bad])
        assert "--steps" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"experiment": "code_content"}))
    with pytest.raises(SystemExit, match="not a file written by paper.annealed_nll"):
        main(["--table", str(other)])


def test_the_readme_quotes_the_committed_annealed_estimates():
    root = pathlib.Path(__file__).resolve().parents[1]
    content = json.loads((root / "docs" / "paper_results" / "annealed_nll.json").read_text())
    table = annealed_table(content)
    assert table in (root / "README.md").read_text()
    assert table in (root / "docs" / "paper_results" / "tables.md").read_text()


def test_the_guide_quotes_the_30_epoch_sentence_estimates():
    # each run's AIS ratio over its seed's ELBO, as the objective guide's 30-epoch table gives it
    root = pathlib.Path(__file__).resolve().parents[1]
    content = json.loads((root / "docs" / "paper_results" / "annealed_nll_30_epochs.json").read_text())
    table = annealed_table(content)
    guide = (root / "docs" / "guide" / "which_objective.rst").read_text()
    labels = {"mim_encoder_side": "MIM, guide from the encoder side", "amim": "A-MIM"}
    ratios = [line.split(" | ")[-1].rstrip(" |") for line in table.splitlines() if line.endswith("x |")]
    runs = [r for r in content["runs"] if not r["reference"]]
    assert len(ratios) == len(runs) == 6
    for run, ratio in zip(runs, ratios):
        row = f'"{run["seed"]}", "{labels[run["objective"]]}", '
        line = next(line for line in guide.splitlines() if line.strip().startswith(row))
        assert f'"{ratio}"' in line, (row, ratio)
