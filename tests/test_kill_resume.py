"""Killing `pyromim train` at random points (during training, inside a file write, after training)
and resuming it ends with the uninterrupted run's parameters, metrics and logs, bit for bit."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyromim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["toy4", "--objective", "mim", "--epochs", "3", "--n-train", "256", "--n-val", "128", "--n-test", "128"]
SETTINGS += ["--num-samples", "10", "--no-plots", "--no-progress", "-q"]

#: Runs `pyromim train` and kills itself (SIGKILL) just before the KILL_AT-th file write is moved
#: into place: the temporary file is complete, the destination still the old one.
KILLING_TRAIN = """
import os, signal, sys
import pyromim._atomic as atomic
calls, kill_at = [0], int(os.environ["KILL_AT"])
replace = atomic.os.replace

class Os:
    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)

atomic.os = Os()
from pyromim.cli import main
sys.exit(main(sys.argv[1:]))
"""

FILES = ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "model.pt", "metrics.json", "metrics.csv")


def outcome(out):
    """What a finished run left: parameters of each weights file, metrics.json and metrics.csv texts."""
    state = {}
    for name in FILES:
        path = out / name
        if name.endswith((".ckpt", ".pt")):
            state[name] = torch.load(path, weights_only=True)["state_dict"]
        else:
            state[name] = path.read_text()
    state["epochs_completed"] = json.loads((out / "run.json").read_text())["epochs_completed"]
    return state


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert a[key].keys() == b[key].keys(), key
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), (key, name)
        else:
            assert a[key] == b[key], key


def env(**extra):
    environ = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    return environ


def killed_then_resumed(out, rng, kill_at):
    """Kill a run before its ``kill_at``-th file write (``None``: at a random moment), then resume it
    (or start it again if no epoch was saved)."""
    command = ["train", *SETTINGS, "--out", str(out)]
    if kill_at is not None:  # inside a file write: a checkpoint, a log row, model.pt, metrics.json ...
        done = subprocess.run(
            [sys.executable, "-c", KILLING_TRAIN, *command], env=env(KILL_AT=str(kill_at)), capture_output=True
        )
        how = f"killed before write {kill_at}"
    else:
        done = subprocess.Popen([sys.executable, "-m", "pyromim", *command], env=env(), stderr=subprocess.PIPE)
        try:
            done.wait(timeout=rng.uniform(3.0, 15.0))
        except subprocess.TimeoutExpired:
            done.send_signal(signal.SIGKILL)
        done.wait()
        how = "killed at a random moment"
    last = out / "checkpoints" / "last.ckpt"
    again = ["--resume", str(last)] if last.is_file() else ["--overwrite"]
    assert main([*command, *again]) == 0, (how, done.returncode)
    assert not list(out.rglob("*.tmp")), how  # the kill's temporary files are gone
    return how


def reference(tmp_path, monkeypatch):
    """The uninterrupted run, and the files it writes in order."""
    import pyromim._atomic as atomic

    written = []
    real = atomic.os.replace

    def recording(src, dst):
        written.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", recording)
    out = tmp_path / "full"
    assert main(["train", *SETTINGS, "--out", str(out)]) == 0
    monkeypatch.undo()
    return outcome(out), written


def check_trials(tmp_path, monkeypatch, kills, seed):
    """``kills``: write numbers to kill before, ``"random"`` for a random one, ``None`` for a random moment;
    or a function of the list of files the run writes, in order, returning them."""
    expected, written = reference(tmp_path, monkeypatch)
    if callable(kills):
        kills = kills(written)
    assert written.count("last.ckpt") == 3 and written[-1] == "run.json"
    rng = random.Random(seed)
    for trial, kill_at in enumerate(kills):
        if kill_at == "random":
            kill_at = rng.randint(1, len(written))
        out = tmp_path / f"trial{trial}"
        how = killed_then_resumed(out, rng, kill_at)
        try:
            assert_same(outcome(out), expected)
        except AssertionError as err:
            raise AssertionError(f"trial {trial} ({how}, writes {written}): {err}") from err


def test_killed_runs_resume_bit_identical(tmp_path, monkeypatch):
    # inside the first last.ckpt write (during training), just after it, and after training
    # (between model.pt and metrics.json); the slow test adds random writes and moments
    def kills(written):
        first_last = written.index("last.ckpt") + 1
        return [first_last, first_last + 1, written.index("metrics.json") + 1]

    check_trials(tmp_path, monkeypatch, kills, seed=0)


@pytest.mark.slow  # 30 trials, a subprocess each: several minutes
def test_killed_runs_resume_bit_identical_many(tmp_path, monkeypatch):
    check_trials(tmp_path, monkeypatch, ["random"] * 20 + [None] * 10, seed=1)
