"""Messages a command-line user can see name the command line's flags, and Python's parameters beside them."""

import numpy as np
import pytest

from pyromim._run_dir import RunDirectoryError, check_run_directory
from pyromim.cli import main

QUICK = ["--epochs", "1", "--num-samples", "10", "--no-plots", "--no-progress"]


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_directory_holding_a_run_names_the_flag_and_the_parameter(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (out / "model.pt").write_bytes(b"earlier")
    assert main(["train", "toy4", "--out", str(out), *QUICK, "-q"]) == 2
    err = _error(capsys)
    assert "pass --overwrite (overwrite=True from Python)" in err and "--resume" in err and "resume=" in err
    assert (out / "model.pt").read_bytes() == b"earlier"  # nothing replaced
    with pytest.raises(RunDirectoryError, match=r"--overwrite \(overwrite=True from Python\)"):
        check_run_directory(out)
    check_run_directory(out, overwrite=True)  # the parameter the message names is the one that works


def test_a_bad_run_setting_names_its_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "toy4", "--n-train", "0", "--out", str(out), *QUICK, "-q"]) == 2
    err = _error(capsys)
    assert "'n_train' must be an int in [1, 2**63 - 1], got 0 (--n-train on the command line)" in err
    assert not out.exists()
    assert main(["train", "toy4", "--num-samples", "0", "--out", str(out), "--epochs", "1", "-q"]) == 2
    assert "(--num-samples on the command line)" in _error(capsys)
    assert not out.exists()


def test_no_training_items_left_names_the_flag(tmp_path):
    from pyromim.data import DataMismatchError
    from pyromim.experiments import prepare_data
    from pyromim.specs import resolve_spec

    with pytest.raises(DataMismatchError, match=r"no training items left \(--n-train 0, n_train= from Python\)"):
        prepare_data(resolve_spec("toy4"), n_train=0)


def test_a_spec_without_data_asks_for_the_data_flag(tmp_path, capsys):
    spec = tmp_path / "mine.toml"
    spec.write_text(
        'name = "mine"\n[data]\nkind = "binary"\nshape = [4]\n[model]\nlatent_dim = 2\nlikelihood = "bernoulli"\n'
    )
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), *QUICK, "-q"]) == 2
    assert "give a data file with --data PATH (data= from Python" in _error(capsys)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_evaluating_a_part_the_data_lack_names_the_split_flag(tmp_path, capsys):
    data = tmp_path / "bits.npy"
    np.save(data, (np.random.default_rng(0).random((120, 6)) > 0.5).astype(np.float32))
    out = tmp_path / "run"
    assert main(["train", str(data), "--val-fraction", "0", "--out", str(out), *QUICK, "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "val", "--num-samples", "5", "-q"]) == 2
    assert "choose another with --split (split= from Python)" in _error(capsys)
    assert not (out / "evaluation.json").exists()
    assert main(["evaluate", str(out), "--split", "test", "--num-samples", "5", "-q"]) == 0  # the advice works
    assert (out / "evaluation.json").is_file()


def test_compare_over_a_damaged_run_names_the_flag_and_the_parameter(tmp_path, capsys):
    out = tmp_path / "cmp"
    (out / "elbo" / "seed0" / "checkpoints").mkdir(parents=True)
    (out / "elbo" / "seed0" / "checkpoints" / "last.ckpt").write_bytes(b"junk")
    command = ["compare", "toy4", "--objectives", "elbo", "--seeds", "1", "--out", str(out), "-q"]
    command += ["--n-train", "256", "--n-val", "64", "--n-test", "64", *QUICK]
    assert main(command) == 2
    err = _error(capsys)
    assert "pass --overwrite (overwrite=True from Python) to train it again" in err
    assert not (out / "compare.json").exists()
    assert main([*command, "--overwrite"]) == 0  # the flag the message names is the one that works
    assert (out / "compare.json").is_file()
