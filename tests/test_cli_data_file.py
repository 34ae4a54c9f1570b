"""``pyromim train FILE``: training on a data file without writing a spec first."""

import json
import shlex

import numpy as np
import pytest

from pyromim.cli import main
from pyromim.specs import ModelSpec, SpecError
from pyromim.specs.from_data import looks_like_data_file, spec_for_data_file

QUICK = ["--epochs", "1", "--num-samples", "10", "--no-plots", "--no-progress"]


@pytest.fixture
def binary_npy(tmp_path):
    path = tmp_path / "bits.npy"
    np.save(path, (np.random.default_rng(0).random((200, 12)) > 0.5).astype(np.float32))
    return path


def test_a_binary_npy_trains_and_its_spec_trains_again(binary_npy, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(binary_npy), "--out", str(out), *QUICK]) == 0
    captured = capsys.readouterr()
    spec = ModelSpec.load(out / "spec.toml")
    assert (spec.data.kind, spec.data.shape, spec.model.likelihood) == ("binary", [12], "bernoulli")
    assert spec.data.dataset is None and spec.name == "bits"
    assert json.loads((out / "run.json").read_text())["data"] == str(binary_npy)
    summary = [line for line in captured.err.splitlines() if "items of shape" in line]
    assert len(summary) == 1 and "200 items of shape [12], binary data" in summary[0]

    # the printed command trains the written spec again, on the same file
    again = captured.out.rsplit("train it again with: ", 1)[1].strip()
    words = shlex.split(again)
    assert words[:3] == ["pyromim", "train", str(out / "spec.toml")]
    out2 = tmp_path / "again"
    assert main([*words[1:], "--out", str(out2), *QUICK]) == 0
    assert (out2 / "spec.toml").read_text() == (out / "spec.toml").read_text()
    assert (out2 / "metrics.json").is_file()


def test_a_csv_with_a_header_trains_with_the_gaussian_likelihood(tmp_path):
    path = tmp_path / "table.csv"
    values = np.random.default_rng(1).normal(size=(150, 3))
    path.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in values) + "\n")
    out = tmp_path / "run"
    assert main(["train", str(path), "--latent-dim", "2", "--out", str(out), *QUICK]) == 0
    spec = ModelSpec.load(out / "spec.toml")
    assert (spec.data.kind, spec.data.shape) == ("continuous", [3])
    assert (spec.model.likelihood, spec.model.latent_dim) == ("gaussian", 2)
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("likelihood", ["poisson", "categorical", "bernouli", "pixelcnn"])
def test_a_likelihood_that_does_not_fit_the_data_is_refused(binary_npy, tmp_path, capsys, likelihood):
    out = tmp_path / "run"
    assert main(["train", str(binary_npy), "--likelihood", likelihood, "--out", str(out), *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--likelihood {likelihood}" in err and "binary data" in err
    assert err.endswith("choose one of: bernoulli, made, gaussian")  # pixelcnn: [H, W] images alone
    assert not out.exists()


def test_counts_fit_several_likelihoods_and_one_must_be_chosen(tmp_path, capsys):
    path = tmp_path / "counts.csv"
    np.savetxt(path, np.random.default_rng(2).poisson(3, size=(100, 4)), delimiter=",", fmt="%d")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "choose one with --likelihood among: poisson, negative_binomial" in err
    assert not (tmp_path / "run").exists()
    made = spec_for_data_file(path, likelihood="poisson")
    assert (made.spec.data.kind, made.spec.model.likelihood) == ("counts", "poisson")
    as_tokens = spec_for_data_file(path, likelihood="categorical").spec.data
    assert as_tokens.kind == "tokens" and as_tokens.vocab_size == int(np.loadtxt(path, delimiter=",").max()) + 1


def test_python_callers_see_the_parameter_names(binary_npy):
    with pytest.raises(SpecError, match=r"^likelihood='poisson' does not fit"):
        spec_for_data_file(binary_npy, likelihood="poisson")
    with pytest.raises(SpecError, match=r"^latent_dim=0: the latent size must be at least 1"):
        spec_for_data_file(binary_npy, latent_dim=0)


def test_data_file_options_are_refused_beside_a_spec_or_a_resume(binary_npy, tmp_path, capsys):
    assert main(["train", "toy4", "--likelihood", "gaussian", "--out", str(tmp_path / "a")]) == 2
    assert "--likelihood applies to training on a data file" in capsys.readouterr().err
    assert main(["train", str(binary_npy), "--data", str(tmp_path / "other.npy"), "--out", str(tmp_path / "b")]) == 2
    assert "give the data once" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "last.ckpt"), "--latent-dim", "3"]) == 2
    assert "leave out --latent-dim" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("a", "b"))


@pytest.mark.parametrize(
    ("name", "is_data"),
    [
        ("x.npy", True),
        ("x.csv.gz", True),
        ("train-images-idx3-ubyte.gz", True),
        ("t10k-labels.idx1-ubyte", True),
        ("lines.txt", True),
        ("spec.toml", False),
        ("toy4", False),
    ],
)
def test_data_files_are_told_from_specs_by_their_names(name, is_data):
    assert looks_like_data_file(name) is is_data


def test_a_text_file_given_with_data_trains_as_tokens_even_with_truncate(tmp_path, capsys):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(["the cat sat on the mat", "a dog ran", "the dog sat"] * 40) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--truncate", "--out", str(out), *QUICK]) == 0
    spec = ModelSpec.load(out / "spec.toml")
    assert (spec.data.kind, spec.model.likelihood, spec.data.shape) == ("tokens", "categorical", [7])
    assert spec.data.vocab_size == json.loads((out / "run.json").read_text())["vocabulary"]["size"]
    assert "--truncate" in shlex.split(capsys.readouterr().out.rsplit("with: ", 1)[1])


def test_grey_levels_default_to_the_discretized_logistic_only_on_its_grid(tmp_path):
    rng = np.random.default_rng(3)
    on_grid, off_grid = tmp_path / "grey.npy", tmp_path / "fractions.npy"
    np.save(on_grid, rng.integers(0, 256, size=(50, 4)).astype(np.float32) / 255)
    np.save(off_grid, rng.random((50, 4)).astype(np.float32))
    assert spec_for_data_file(on_grid).spec.model.likelihood == "discretized_logistic"
    made = spec_for_data_file(off_grid)
    assert (made.spec.data.kind, made.spec.model.likelihood) == ("grey", "gaussian")


def test_a_pixelcnn_spec_needs_images_of_two_axes():
    text = '[data]\nkind = "binary"\nshape = {shape}\n[model]\nlatent_dim = 2\nlikelihood = "pixelcnn"\n'
    with pytest.raises(SpecError, match=r"'pixelcnn' needs 'data.shape' = \[H, W\].*got \[16\]; .*bernoulli, made"):
        ModelSpec.from_toml('name = "flat"\n' + text.format(shape="[16]"))
    assert ModelSpec.from_toml('name = "images"\n' + text.format(shape="[4, 4]")).data.shape == [4, 4]
