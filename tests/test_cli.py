"""The ``pyromim`` command line: train, evaluate, compare end to end on tiny data, errors, console script, DDP."""

import csv
import json
import math
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

from pyromim.cli import build_parser, main
from pyromim.metrics import EVALUATE_KEYS
from pyromim.specs.toml_io import loads

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--epochs",
    "2",
    "--n-train",
    "256",
    "--n-val",
    "128",
    "--n-test",
    "128",
    "--num-samples",
    "20",
    "--no-progress",
]


def subprocess_env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_python(code, timeout=120):
    """Run ``python -c code`` on this checkout; the completed process, output as text."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=timeout
    )


def pyromim_command():
    """The installed console script when it runs this checkout's code, else ``python -m pyromim``."""
    scripts = [ep for ep in entry_points(group="console_scripts") if ep.name == "pyromim"]
    script = Path(sysconfig.get_path("scripts")) / "pyromim"
    if scripts and script.is_file():
        import pyromim

        if Path(pyromim.__file__).resolve().parent == ROOT / "pyromim":
            return [str(script)]
    return [sys.executable, "-m", "pyromim"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "toy"
    assert main(["train", "toy4", "--out", str(out), *TINY]) == 0
    return out


def test_pyproject_declares_the_console_script():
    project = loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["scripts"]["pyromim"]
    assert target == "pyromim.cli:console_main"
    for extra in ("plots", "all", "test"):
        assert any(dep.startswith("matplotlib") for dep in project["project"]["optional-dependencies"][extra])


def test_parser_lists_the_four_subcommands():
    usage = build_parser().format_help()
    assert "{train,evaluate,encode,compare}" in usage
    args = build_parser().parse_args(["train", "toy4", "--objective", "amim", "--devices", "2", "--strategy", "ddp"])
    assert (args.spec, args.objective, args.devices, args.strategy) == ("toy4", "amim", "2", "ddp")
    # every registered objective is a choice; compare's default is the compared ones
    assert build_parser().parse_args(["train", "toy4", "--objective", "mim_score"]).objective == "mim_score"
    assert build_parser().parse_args(["compare", "toy4"]).objectives == "elbo,amim,mim"


def test_train_writes_outputs_and_prints_the_metrics(trained, capsys):
    for name in (
        "metrics.json",
        "spec.toml",
        "model.pt",
        "run.json",
        "metrics.csv",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "training_curves.png",
        "latent_space.png",
        "data_reconstructions.png",
    ):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert list(metrics) == list(EVALUATE_KEYS) and all(math.isfinite(v) for v in metrics.values())
    assert loads((trained / "spec.toml").read_text())["training"]["epochs"] == 2


def test_evaluate_prints_table_and_writes_json(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(trained), "--num-samples", "20", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for key in EVALUATE_KEYS:
        assert key in printed
    saved = json.loads(out.read_text())
    assert saved["n_items"] == 128 and list(saved["metrics"]) == list(EVALUATE_KEYS)
    # same parameters, data and seeded estimates as the run's own evaluation: identical deterministic metrics
    run_metrics = json.loads((trained / "metrics.json").read_text())
    assert saved["metrics"]["recon_error"] == pytest.approx(run_metrics["recon_error"], rel=1e-6)
    assert saved["metrics"]["knn5_accuracy"] == run_metrics["knn5_accuracy"]


def test_resume_through_the_cli_ends_like_an_uninterrupted_run(tmp_path):
    common = ["train", "toy4", "--objective", "amim", "--no-plots", *TINY[2:]]
    assert main([*common, "--epochs", "3", "--out", str(tmp_path / "full")]) == 0
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "part")]) == 0
    assert main([*common, "--epochs", "3", "--resume", str(tmp_path / "part" / "checkpoints" / "last.ckpt")]) == 0
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # the seeded in-run evaluation and the log are those of the uninterrupted run too
    for name in ("metrics.json", "metrics.csv"):
        assert (tmp_path / "part" / name).read_text() == (tmp_path / "full" / name).read_text(), name


def test_resuming_a_finished_run_trains_no_more_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "toy4", "--objective", "amim", "--no-plots", *TINY, "--out", str(out)]
    assert main(common) == 0
    last = out / "checkpoints" / "last.ckpt"
    before = {name: (out / name).read_bytes() for name in ("checkpoints/last.ckpt", "metrics.csv", "metrics.json")}
    capsys.readouterr()
    assert main([*common, "--resume", str(last)]) == 0
    assert "nothing left to train" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert json.loads((out / "run.json").read_text())["epochs_completed"] == 2


def test_resume_with_other_settings_is_refused_naming_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "toy4", "--objective", "amim", "--no-plots", *TINY, "--out", str(out)]) == 0
    last = str(out / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(["train", "toy4", "--objective", "elbo", "--no-plots", *TINY, "--resume", last]) == 2
    err = capsys.readouterr().err
    assert "--objective elbo (the run's: amim)" in err and _one_line(err)
    assert main(["train", "toy4", "--objective", "amim", "--no-plots", *TINY, "--lr", "0.5", "--resume", last]) == 2
    assert "--lr 0.5 (the run's: 0.001)" in capsys.readouterr().err


def test_resume_of_a_missing_checkpoint_writes_nothing(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "checkpoints" / "last.ckpt"
    assert main(["train", "toy4", *TINY, "--resume", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("name", ["checkpoints/best.ckpt", "run.json"])
def test_evaluating_a_run_with_a_corrupted_file_is_refused(tmp_path, capsys, name):
    out = tmp_path / "run"
    assert main(["train", "toy4", "--no-plots", *TINY, "--out", str(out)]) == 0
    (out / "model.pt").unlink()  # evaluate from best.ckpt
    path = out / name
    raw = bytearray(path.read_bytes())
    if name == "run.json":
        raw = bytearray(path.read_text().replace('"seed": 0', '"seed": 1').encode())
    else:
        weight = torch.load(path, weights_only=True)["state_dict"]["owners.0.encoder.body.net.0.weight"]
        at = raw.index(weight.numpy().tobytes())
        raw[at : at + 4] = torch.tensor([1.2e36]).numpy().tobytes()
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--num-samples", "5"]) == 2
    err = capsys.readouterr().err
    assert name.split("/")[-1] in err and "checksum mismatch" in err and _one_line(err)


def test_compare_prints_side_by_side_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "toy4",
        "--objectives",
        "elbo,mim",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--n-train",
        "128",
        "--n-val",
        "64",
        "--n-test",
        "64",
        "--num-samples",
        "10",
        "--no-progress",
        "--no-plots",
    ]  # the figure is checked in test_experiments.py
    assert main(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "VAE", "(ELBO)", "MIM"]
    assert "mean ± std over 2 seed(s)" in printed
    saved = json.loads((out / "compare.json").read_text())
    assert sorted(saved["summary"]) == ["elbo", "mim"] and len(saved["runs"]) == 4
    assert (out / "compare.md").read_text().count("±") >= len(EVALUATE_KEYS)


# ---------------------------------------------------------------- errors


def run_error(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def test_unknown_spec_suggests_the_nearest_name(tmp_path, capsys):
    code, err = run_error(["train", "toy_4", "--out", str(tmp_path)], capsys)
    assert code == 2 and "no spec named 'toy_4'" in err and "did you mean 'toy4'" in err


def test_bad_data_file_is_named(tmp_path, capsys):
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"this is not an array")
    code, err = run_error(["train", "toy4", "--data", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "broken.npy" in err and "not a .npy file" in err
    code, err = run_error(
        ["train", "toy4", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "neither a built-in data set" in err


def test_mismatched_data_names_spec_and_file(tmp_path, capsys):
    path = tmp_path / "counts.csv"
    np.savetxt(path, np.random.default_rng(0).integers(0, 9, size=(30, 64)), delimiter=",", fmt="%d")
    code, err = run_error(["train", "digits_normal", "--data", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "spec 'digits_normal'" in err and "bernoulli" in err and "counts.csv" in err
    assert not (tmp_path / "o" / "checkpoints").exists()  # rejected before training


def test_file_options_need_a_data_file(tmp_path, capsys):
    code, err = run_error(["train", "toy4", "--binarize", "0.5", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--data PATH" in err


def test_evaluate_of_a_directory_that_is_no_run(tmp_path, capsys):
    code, err = run_error(["evaluate", str(tmp_path)], capsys)
    assert code == 2 and "not a run directory" in err


def test_an_internal_bug_is_not_reported_as_a_user_error(tmp_path, monkeypatch):
    import pyromim.experiments

    def broken_run(*args, **kwargs):
        raise ValueError("an internal bug")  # not a spec, data, checkpoint or option error

    monkeypatch.setattr(pyromim.experiments, "run", broken_run)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["train", "toy4", "--out", str(tmp_path)])


def test_bad_objective_list_is_a_usage_error(tmp_path, capsys):
    code, err = run_error(["compare", "toy4", "--objectives", "elbo,sgd", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--objectives" in err and "unknown objective 'sgd'" in err
    code, err = run_error(["compare", "toy4", "--objectives", "mim,mim", "--out", str(tmp_path)], capsys)
    assert code == 2 and "distinct" in err


def test_train_without_the_training_extra_says_which_extra_to_install(tmp_path):
    # a base install (no extras): lightning cannot be imported
    code = (
        "import sys; sys.modules['lightning'] = None; from pyromim.cli import main; "
        f"sys.exit(main(['train', 'toy4', '--out', {str(tmp_path)!r}]))"
    )
    done = run_python(code, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "install pyromim[train]" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- as a program


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train"], ["compare", "toy4", "--seeds", "x"]])
def test_help_and_argument_errors_import_no_torch(argv):
    # help and usage errors come back without the heavy imports (torch, Pyro, Lightning)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['pyromim', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('pyromim', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    heavy = sorted(m for m in ('torch', 'pyro', 'lightning', 'numpy') if m in sys.modules)\n"
        "    print('heavy:', heavy, file=sys.stderr)\n"
        "    sys.exit(done.code)\n"
    )
    done = run_python(code, timeout=60)
    assert done.returncode == (0 if "--help" in argv else 2), done.stderr
    assert "usage: pyromim" in done.stdout + done.stderr
    assert "heavy: []" in done.stderr


def test_the_package_exports_on_first_use():
    code = (
        "import sys, pyromim\n"
        "assert 'torch' not in sys.modules\n"
        "from pyromim import Trace_MIM, build_model\n"
        "from pyromim.infer import Trace_MIM as T\n"
        "assert T is Trace_MIM and pyromim.Trace_MIM is Trace_MIM and 'torch' in sys.modules\n"
        "assert pyromim.metrics.EVALUATE_KEYS and 'Trace_MIM' in dir(pyromim)\n"
        "try:\n"
        "    pyromim.no_such_name\n"
        "except AttributeError as err:\n"
        "    print(err)\n"
    )
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "module 'pyromim' has no attribute 'no_such_name'" in done.stdout


def test_console_script_trains(tmp_path):
    out = tmp_path / "run"
    command = pyromim_command()
    done = subprocess.run(
        [*command, "train", "toy4", "--out", str(out), *TINY, "--no-plots"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "knn5_accuracy" in done.stdout
    assert "[pyromim] finished after 2 epochs" in done.stderr
    assert "GPU available" not in done.stderr  # Lightning's chatter only with --verbose
    assert json.loads((out / "metrics.json").read_text()).keys() == set(EVALUATE_KEYS)


@pytest.mark.slow  # about 40 s on two CPU cores: three Python processes each import torch, Pyro and Lightning
def test_two_process_cpu_ddp_through_the_cli(tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            *pyromim_command(),
            "train",
            "toy4",
            "--objective",
            "mim",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--accelerator",
            "cpu",
            "--out",
            str(out),
            *TINY,
            "--no-plots",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("knn5_accuracy") == 1  # only global rank 0 reports
    info = json.loads((out / "run.json").read_text())
    assert info["devices"] == 2 and info["epochs_completed"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(v) for v in metrics.values())
    # per-datum MIM loss of toy4 after two epochs of warm-up: a few nats, as in one process
    assert 0.5 < info["best_score"] < 10.0
    # five separated clusters: even a barely trained 2-D encoder keeps most labels apart
    assert metrics["knn5_accuracy"] > 0.5
    # the README's data-parallel semantics: each process trains on half of the 256 items per
    # epoch in batches of 128, so an epoch is 1 optimiser step (2 in one process)
    rows = [row for row in csv.DictReader((out / "metrics.csv").open()) if row["train_loss"]]
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert [int(row["step"]) + 1 for row in rows] == [1, 2]  # Lightning logs the last step's 0-based index


# ------------------------------------------------ preconditions, checked before any training


def _no_training(monkeypatch):
    """Make any attempt to train fail loudly: each refusal below must come before training starts."""
    import pyromim.experiments.runner

    def no_fit(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(pyromim.experiments.runner, "fit", no_fit)


def _one_line(err):
    lines = [line for line in err.splitlines() if line.startswith("pyromim ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_output_paths_that_cannot_be_written_are_refused_first(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    (tmp_path / "afile").write_text("x")
    code, err = run_error(["train", "toy4", "--out", str(tmp_path / "afile")], capsys)
    assert code == 2 and "--out" in _one_line(err) and "is a file, not a directory" in err
    code, err = run_error(["train", "toy4", "--out", str(tmp_path / "afile" / "run")], capsys)
    assert code == 2 and "is a file, so the directory cannot be created" in _one_line(err)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    real_access = os.access
    # root may write anywhere; emulate the permission check a user gets
    monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and Path(p) != read_only)
    code, err = run_error(["train", "toy4", "--out", str(read_only / "run")], capsys)
    assert code == 2 and f"{read_only} is not writable" in _one_line(err)
    code, err = run_error(["compare", "toy4", "--out", str(read_only / "cmp")], capsys)
    assert code == 2 and "is not writable" in _one_line(err)


def test_evaluate_json_naming_a_directory_and_zero_samples_are_refused(trained, tmp_path, capsys):
    code, err = run_error(["evaluate", str(trained), "--json", str(tmp_path)], capsys)
    assert code == 2 and "--json" in _one_line(err) and "is a directory" in err
    code, err = run_error(["evaluate", str(trained), "--num-samples", "0"], capsys)
    assert code == 2 and "--num-samples must be at least 1" in _one_line(err)


def test_gpu_accelerator_without_a_gpu_is_refused(tmp_path, capsys, monkeypatch):
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    _no_training(monkeypatch)
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    code, err = run_error(["train", "toy4", "--accelerator", "gpu", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "this machine has no gpu device" in _one_line(err)
    code, err = run_error(["train", "toy4", "--accelerator", "abacus", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--accelerator 'abacus' is not one of" in _one_line(err)
    for devices in ("0", "-1"):
        code, err = run_error(["train", "toy4", "--devices", devices, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and "'devices' must be an int >= 1" in _one_line(err)
    assert not (tmp_path / "o").exists()


def test_too_little_data_for_the_metrics_is_refused_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    out = tmp_path / "o"
    code, err = run_error(["train", "toy4", "--n-test", "5", "--out", str(out)], capsys)
    line = _one_line(err)
    assert code == 2 and "5 item(s) are too few" in line and "--n-test" in line
    small = tmp_path / "small.csv"
    np.savetxt(small, np.random.default_rng(0).normal(size=(40, 2)), delimiter=",")
    code, err = run_error(["train", "toy4", "--data", str(small), "--out", str(out)], capsys)
    assert code == 2 and "small.csv (test)" in _one_line(err) and "too few" in err
    assert not out.exists()  # nothing written


def test_bad_spec_files_are_named(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    (tmp_path / "folder.toml").mkdir()
    code, err = run_error(["train", str(tmp_path / "folder.toml")], capsys)
    assert code == 2 and "folder.toml: is a directory, not a spec file" in _one_line(err)
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(bytes(range(128, 256)) * 4)
    code, err = run_error(["train", str(garbage)], capsys)
    assert code == 2 and "garbage.toml: not a spec file" in _one_line(err)
    text = (ROOT / "models" / "toy4.toml").read_text()
    for name, problem in (("../../escape", "path separator"), ("/tmp/abs", "path separator"), ("..", "relative")):
        evil = tmp_path / "evil.toml"
        evil.write_text(text.replace('name = "toy4"', f"name = {json.dumps(name)}"))
        code, err = run_error(["train", str(evil)], capsys)
        line = _one_line(err)
        assert code == 2 and "evil.toml: 'name'" in line and problem in line
    huge = tmp_path / "huge.toml"
    huge.write_text(text.replace("latent_dim = 2", "latent_dim = 1000000000"))
    code, err = run_error(["train", str(huge), "--out", str(tmp_path / "h")], capsys)
    assert code == 2 and "'model.latent_dim' = 1000000000 needs at least" in _one_line(err)
    assert not (tmp_path / "h").exists()
    code, err = run_error(["train", "toy4", "--batch-size", str(10**20), "--out", str(tmp_path / "h")], capsys)
    assert code == 2 and "'batch_size' must be an int in" in _one_line(err)


def test_checkpoint_of_a_changed_spec_is_refused_in_one_line(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    spec = run / "spec.toml"
    spec.write_text(spec.read_text().replace("hidden = [50]", "hidden = [60]"))
    code, err = run_error(["evaluate", str(run / "checkpoints" / "last.ckpt"), "--num-samples", "5"], capsys)
    line = _one_line(err)
    assert (
        code == 2 and "last.ckpt: its weights do not fit the spec" in line and "[encoder] hidden: [50] -> [60]" in line
    )


def test_decompression_limit_option(tmp_path, capsys, monkeypatch):
    import gzip

    _no_training(monkeypatch)
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"0.5,0.5\n" * 300_000)  # 2.4 MB of text
    code, err = run_error(
        ["train", "toy4", "--data", str(path), "--max-decompressed-mb", "1", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "bomb.csv.gz" in _one_line(err) and "more than 1 MB" in err
    assert "PYROMIM_MAX_DECOMPRESSED_MB" not in os.environ  # the option does not outlive the command
    code, err = run_error(["train", "toy4", "--max-decompressed-mb", "0", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--max-decompressed-mb must be a finite number of megabytes > 0" in _one_line(err)


def test_a_run_directory_is_never_overwritten_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    command = ["train", "toy4", "--no-plots", *TINY, "--out", str(out)]
    assert main(command) == 0
    (out / "evaluation.json").write_text("{}")  # from an earlier 'pyromim evaluate'
    (out / "checkpoints" / ".last.ckpt.k2j4x9.tmp").write_bytes(b"half a file")  # left by a kill
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".tmp"}
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "--resume" in err and _one_line(err)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".tmp"} == before
    assert not list(out.rglob("*.tmp"))  # only the temporary file a kill left is removed
    assert main([*command, "--overwrite"]) == 0
    assert not (out / "evaluation.json").exists()  # no stale file beside the new model
    assert (out / "model.pt").is_file() and (out / "run.json").is_file()


def test_two_processes_cannot_share_a_run_directory(tmp_path, capsys):
    from pyromim._run_dir import claim_run_directory

    out = tmp_path / "run"
    with claim_run_directory(out):  # as another process holding it would
        assert main(["train", "toy4", "--no-plots", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and ".pyromim.lock" in err and _one_line(err)
    with claim_run_directory(out):  # released at the end of the block; a killed holder releases it too
        pass


def test_outputs_have_the_users_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert main(["train", "toy4", "--no-plots", *TINY, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert {"model.pt", "run.json", "metrics.json", "metrics.csv", "checkpoints/last.ckpt"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def test_divergence_is_a_failed_run_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_error(["train", "toy4", "--lr", "1000", "--no-plots", *TINY, "--out", str(out)], capsys)
    line = _one_line(err)
    assert code == 1 and line.startswith("pyromim train: training failed: ") and "tensor(" not in err
    assert "objective is nan at epoch 1, training batch 1" in line
    assert "in the model on the encoder side at the site after 'z'" in line and "no checkpoint was written yet" in line
    assert not (out / "model.pt").exists()


def test_evaluate_chooses_the_nll_proposal(trained, tmp_path, capsys):
    """--nll-refit 0 keeps the encoder as the proposal, --nll-refit N refits per item: both valid
    estimates of the same likelihood, from different draws (so different numbers); a negative count
    is refused."""
    nll = {}
    for steps in ("0", "10"):
        out = tmp_path / f"eval{steps}.json"
        assert main(["evaluate", str(trained), "--num-samples", "20", "--nll-refit", steps, "--json", str(out)]) == 0
        saved = json.loads(out.read_text())
        assert saved["nll_refit"] == int(steps)
        nll[steps] = saved["metrics"]["nll"]
    assert all(math.isfinite(v) for v in nll.values()) and nll["0"] != nll["10"]
    code, err = run_error(["evaluate", str(trained), "--nll-refit", "-1"], capsys)
    assert code == 2 and "--nll-refit must be 0" in _one_line(err)
    out = tmp_path / "ais.json"
    args = ["evaluate", str(trained), "--num-samples", "20", "--nll-ais", "5", "--nll-ais-chains", "4"]
    assert main([*args, "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert (saved["nll_ais"], saved["nll_ais_chains"]) == (5, 4) and math.isfinite(saved["metrics"]["nll"])
    code, err = run_error(["evaluate", str(trained), "--nll-ais", "-3"], capsys)
    assert code == 2 and "--nll-ais must be 0 (off)" in _one_line(err)
