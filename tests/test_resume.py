"""Resuming from the checkpoint alone, refusals before any data are loaded, and run directories never taken over."""

import json
import shutil

import pytest
import torch

import pyromim.experiments.runner as runner
from pyromim._run_dir import claim_run_directory
from pyromim.cli import build_parser, main

TINY = ["--n-train", "256", "--n-val", "128", "--n-test", "128", "--num-samples", "20", "--no-progress"]
#: A run whose settings all differ from toy4's defaults: objective, seed, caps, [training] values.
SETTINGS = ["toy4", "--objective", "amim", "--seed", "3", "--lr", "0.005", "--patience", "0", "--no-plots", *TINY]


def parameters(out):
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_resume_from_the_checkpoint_alone_restores_every_setting(tmp_path, capsys):
    assert main(["train", *SETTINGS, "--epochs", "3", "--out", str(tmp_path / "full")]) == 0
    assert main(["train", *SETTINGS, "--epochs", "2", "--out", str(tmp_path / "part")]) == 0
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    # nothing repeated but the epoch budget, which may grow
    assert main(["train", "--resume", str(last), "--epochs", "3", "--no-progress"]) == 0
    assert f"resuming {tmp_path / 'part'} at epoch 3 of 3" in capsys.readouterr().err
    full, resumed = parameters(tmp_path / "full"), parameters(tmp_path / "part")
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    for name in ("metrics.json", "metrics.csv"):
        assert (tmp_path / "part" / name).read_text() == (tmp_path / "full" / name).read_text(), name
    info = json.loads((tmp_path / "part" / "run.json").read_text())
    assert (info["objective"], info["seed"], info["caps"]["n_train"], info["training"]["lr"]) == ("amim", 3, 256, 0.005)


def no_data(*args, **kwargs):
    raise AssertionError("the data were loaded before the refusal")


@pytest.fixture
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", *SETTINGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


def refusal(argv, capsys, monkeypatch):
    """The one error line of ``argv``, which must come before any data are loaded or a model is built."""
    monkeypatch.setattr(runner, "prepare_data", no_data)
    monkeypatch.setattr(runner, "build_model", no_data)
    capsys.readouterr()
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pyromim ")]
    assert len(lines) == 1, lines
    return lines[0]


def files_of(run):
    """``{relative path: bytes}`` of every file under ``run``."""
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resume_refuses_other_settings_naming_each_option(trained, capsys, monkeypatch):
    last = str(trained / "checkpoints" / "last.ckpt")
    before = files_of(trained)
    argv = ["train", "--resume", last, "--seed", "4", "--n-train", "100", "--lr", "0.005", "--q-x", "data"]
    line = refusal(argv, capsys, monkeypatch)
    assert "--seed 4 (the run's: 3)" in line and "--n-train 100 (the run's: 256)" in line
    assert "--q-x data (the run's: marginal)" in line and "--lr" not in line.split("may change")[0]  # same lr: fine
    assert "--epochs" in line  # says what may change
    line = refusal(["train", "digits_normal", "--resume", last], capsys, monkeypatch)
    assert "SPEC digits_normal is not the run's spec" in line
    assert files_of(trained) == before  # the run is left as it was


def test_resume_never_takes_over_another_run_directory(trained, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.pt").write_bytes(b"another run's model")
    last = str(trained / "checkpoints" / "last.ckpt")
    line = refusal(["train", "--resume", last, "--out", str(other)], capsys, monkeypatch)
    assert str(other) in line and "--overwrite" in line
    assert (other / "model.pt").read_bytes() == b"another run's model"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--num-nodes", "2"], "--num-nodes 2: no cluster environment"),
        (["--accelerator", "tpu"], "--accelerator tpu"),
        (["--strategy", "bogus"], "--strategy 'bogus' is not a Lightning strategy; use one of: auto, ddp"),
    ],
)
def test_device_flags_are_refused_before_the_data(tmp_path, capsys, monkeypatch, argv, words):
    for name in ("SLURM_NTASKS", "MASTER_ADDR", "NODE_RANK", "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(name, raising=False)
    assert words in refusal(["train", "toy4", *argv, "--out", str(tmp_path / "o")], capsys, monkeypatch)
    assert not (tmp_path / "o").exists()  # no run directory made for a run that never starts


def test_a_directory_holding_a_run_is_refused_before_the_data(trained, capsys, monkeypatch):
    before = files_of(trained)
    line = refusal(["train", *SETTINGS, "--out", str(trained)], capsys, monkeypatch)
    assert "already holds files" in line and f"--resume {trained / 'checkpoints' / 'last.ckpt'}" in line
    assert files_of(trained) == before  # the run is left as it was


def test_overwrite_removes_only_what_a_run_wrote(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("latent.png", "spec.toml", "metrics.csv", "checkpoints/last.ckpt", "mine.png", "notes.txt"):
        (out / name).write_text(name)
    (out / "run.json").write_text(json.dumps({"files": ["latent.png", "spec.toml", "../escape.png"]}))
    (tmp_path / "escape.png").write_text("outside the run")
    with claim_run_directory(out, overwrite=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == [".pyromim.lock", "mine.png", "notes.txt"]
    assert (tmp_path / "escape.png").is_file()


def test_what_may_change_on_resume_is_named_in_the_help_and_accepted(trained):
    from pyromim.cli.checks import _resume_differences
    from pyromim.experiments.runner import saved_run

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    resume_help = " ".join(text.split("--resume CKPT")[-1].split())
    for option in ("--epochs", "--devices", "--strategy", "--accelerator", "--num-nodes"):
        assert option in resume_help, option
    # and a resume accepts them changed, while it refuses another seed
    last = str(trained / "checkpoints" / "last.ckpt")
    changed = ["--epochs", "5", "--devices", "2", "--strategy", "ddp", "--accelerator", "gpu", "--num-nodes", "2"]
    args = build_parser().parse_args(["train", "--resume", last, *changed])
    assert _resume_differences(args, saved_run(last)) == []
    args = build_parser().parse_args(["train", "--resume", last, *changed, "--seed", "4"])
    assert len(_resume_differences(args, saved_run(last))) == 1


COMPARE = ["compare", "toy4", "--objectives", "elbo", "--seeds", "2", "--epochs", "2", "--n-train", "128"]
COMPARE += ["--n-val", "64", "--n-test", "64", "--num-samples", "10", "--no-progress", "--no-plots"]


def test_compare_keeps_finished_runs_and_resumes_unfinished_ones(tmp_path, capsys, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*COMPARE, "--out", str(full)]) == 0
    # an interrupted comparison: seed 0 finished, seed 1 stopped after its first epoch
    shutil.copytree(full / "elbo" / "seed0", cut / "elbo" / "seed0")
    one_epoch = ["train", "toy4", "--objective", "elbo", "--seed", "1", "--epochs", "1", *COMPARE[8:]]
    assert main([*one_epoch, "--out", str(cut / "elbo" / "seed1")]) == 0
    (cut / "elbo" / "seed1" / "run.json").unlink()  # as if killed before the run's end
    finished = {p: p.read_bytes() for p in (cut / "elbo" / "seed0").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*COMPARE, "--out", str(cut)]) == 0
    err = capsys.readouterr().err
    assert "1/2 VAE (ELBO), seed 0: kept" in err and "2/2 VAE (ELBO), seed 1: resumed" in err
    assert {p: p.read_bytes() for p in finished} == finished  # the finished run is left as it was
    a, b = parameters(full / "elbo" / "seed1"), parameters(cut / "elbo" / "seed1")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = [json.loads((d / "compare.json").read_text())["summary"] for d in (full, cut)]
    assert summary[0] == summary[1]
    # other settings or foreign files: refused before any data, in compare's own words (it has no --resume)
    line = refusal([*COMPARE, "--out", str(cut), "--lr", "0.5"], capsys, monkeypatch)
    assert "holds a run of other settings" in line and "--overwrite" in line and "--resume" not in line
    (cut / "elbo" / "seed1" / "checkpoints" / "last.ckpt").unlink()
    line = refusal([*COMPARE, "--out", str(cut)], capsys, monkeypatch)
    assert "already holds files" in line and "--overwrite" in line and "--resume" not in line


def test_a_memory_refusal_comes_before_the_data(tmp_path, capsys, monkeypatch):
    import pyromim.models.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 1000)  # bytes: no spec's parameters fit
    line = refusal(["train", "toy4", "--out", str(tmp_path / "o")], capsys, monkeypatch)
    assert "toy4" in line and "needs at least" in line and not (tmp_path / "o").exists()
