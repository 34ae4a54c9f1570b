"""`pyromim encode` and encode_run: latent means (and draws) of data under a trained run's model."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pyromim import load_model
from pyromim.cli import main
from pyromim.data import load_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("encode") / "run"
    argv = ["train", "toy4", "--epochs", "1", "--seed", "3", "--n-train", "256", "--n-val", "64", "--n-test", "128"]
    assert main([*argv, "--num-samples", "5", "--no-plots", "--no-progress", "--out", str(out)]) == 0
    return out


def test_encode_the_runs_own_test_part_with_draws(trained, tmp_path, capsys):
    out = tmp_path / "codes.npz"
    assert main(["encode", str(trained), "--out", str(out), "--samples", "400"]) == 0
    assert f"wrote {out}: 128 items" in capsys.readouterr().out
    codes = np.load(out)
    # the same items, independently: the run's data (toy4, seed 3), its test part capped at 128
    test = load_data("toy4", seed=3).test
    x, labels = test.x[:128], test.labels[:128]
    model = load_model(trained / "model.pt").eval()
    with torch.no_grad():
        loc, scale = (t.numpy() for t in model.posterior(x))
    assert np.array_equal(codes["labels"], labels.numpy())
    np.testing.assert_allclose(codes["means"], loc, rtol=1e-6, atol=1e-7)
    draws = codes["samples"]
    assert draws.shape == (128, 400, loc.shape[1])
    # draws of q(z|x): their mean is within 5 standard errors of loc for every item and dimension
    # (256 entries: a false alarm has probability below 2e-4), and their spread is the posterior scale
    assert np.all(np.abs(draws.mean(1) - loc) < 5 * scale / np.sqrt(400))
    ratio = (draws.std(1, ddof=1) / scale).mean()  # each std within about 3.5 % (1/sqrt(800)); 256 averaged
    assert abs(ratio - 1) < 0.02


def test_encode_a_file_whole_in_file_order_to_csv(trained, tmp_path, capsys):
    x = load_data("toy4", seed=9).train.x[:10]
    np.save(tmp_path / "points.npy", x.numpy())
    out = tmp_path / "codes.csv"
    assert main(["encode", str(trained / "model.pt"), "--data", str(tmp_path / "points.npy"), "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    with torch.no_grad():
        expected = load_model(trained / "model.pt").eval().encode(x).numpy()
    assert rows[0] == [f"z{j}" for j in range(expected.shape[1])]
    assert np.array_equal(np.array(rows[1:], dtype=np.float64), expected.astype(np.float64))


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--out", "codes.npy", "--samples", "2"], "a .npy file holds the means alone"),
        (["--out", "codes.txt"], "ending in .npy, .npz or .csv"),
        (["--out", "codes.csv", "--samples", "-1"], "--samples must be at least 0"),
    ],
)
def test_encode_refuses_bad_options_in_one_line(trained, tmp_path, capsys, monkeypatch, extra, words):
    monkeypatch.chdir(tmp_path)
    assert main(["encode", str(trained), *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_readme_encode_snippet_runs(trained):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = next(b for b in re.findall(r"```py\n(.*?)```", readme, flags=re.S) if "load_model(" in b)
    namespace: dict = {}
    exec(compile(snippet.replace("runs/toy4/mim-seed0", str(trained)), "README encode", "exec"), namespace)
    model, x = namespace["model"], namespace["x"]
    with torch.no_grad():
        loc, _ = model.posterior(x)
    assert torch.equal(namespace["z"], loc) and namespace["z_draw"].shape == loc.shape
    assert namespace["x_new"].shape == (10, 2)
