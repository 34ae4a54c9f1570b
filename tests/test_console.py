"""The console: one progress bar and one line per run for ``compare``, ``--quiet`` and ``--verbose``,
no Lightning banner lines, and the bar's arithmetic over runs that stop early or resume."""

import re
import subprocess
from types import SimpleNamespace

import torch
from test_cli import pyromim_command, subprocess_env

from pyromim.experiments.console import ProgressBar
from pyromim.metrics import EVALUATE_KEYS

TINY_DATA = ["--n-train", "256", "--n-val", "128", "--n-test", "128", "--num-samples", "20", "--no-plots"]
#: What Lightning prints unless asked (banner, notices, tips) and the warnings nobody can act on.
LIGHTNING_CHATTER = ("GPU available", "TPU available", "HPU available", "LOCAL_RANK", "Tip:", "Trainer.fit", "workers")


def console(args, tmp_path):
    """Run the ``pyromim`` command; its exit status and stdout and stderr as the console shows them together."""
    done = subprocess.run(
        [*pyromim_command(), *args],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
        cwd=tmp_path,
    )
    return done.returncode, done.stdout.decode()  # bytes: text mode would turn a bar's "\r" into line ends


def test_compare_prints_one_bar_a_line_per_run_and_ends_with_the_table(tmp_path):
    code, text = console(
        ["compare", "toy4", "--objectives", "elbo,mim", "--seeds", "1", "--epochs", "2", *TINY_DATA], tmp_path
    )
    assert code == 0, text[-3000:]
    lines = text.rstrip("\n").split("\n")  # a bar's "\r" updates stay on one line, as in `2>&1 | wc -l`
    # one summary line per run, the bar's last state, and the table with its heading: nothing per epoch
    assert len(re.findall(r"\[pyromim\] [12]/2 ", text)) == 2, text
    assert len(lines) <= 2 + len(EVALUATE_KEYS) + 12 and len(lines) < 60, text
    assert "(2/2)" in text and "epoch" in text  # the bar names the run in progress
    assert not [word for word in LIGHTNING_CHATTER if word in text], text
    table = lines[-len(EVALUATE_KEYS) - 2 :]
    assert table[0].split() == ["metric", "VAE", "(ELBO)", "MIM"] and set(table[1]) <= {"-", " "}
    assert [row.split()[0] for row in table[2:]] == list(EVALUATE_KEYS)


def test_quiet_prints_the_result_only_and_errors(tmp_path):
    done = subprocess.run(
        [*pyromim_command(), "train", "toy4", "-q", "--epochs", "1", *TINY_DATA, "--out", "run"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]  # no bar, no steps, no warnings
    assert "knn5_accuracy" in done.stdout and "run directory" in done.stdout
    code, text = console(["train", "toy4", "-q", "--epochs", "0"], tmp_path)
    assert code == 2 and text.count("\n") == 1 and "error" in text, text


def test_verbose_shows_lightnings_own_output(tmp_path):
    code, text = console(
        ["train", "toy4", "-v", "--epochs", "1", *TINY_DATA, "--no-progress", "--out", "run"], tmp_path
    )
    assert code == 0, text[-3000:]
    assert "GPU available" in text and "[pyromim] spec toy4" in text


def fake_trainer(epoch=0, **losses):
    return SimpleNamespace(
        is_global_zero=True, current_epoch=epoch, callback_metrics={k: torch.tensor(v) for k, v in losses.items()}
    )


def test_the_bar_counts_every_runs_epochs_through_early_stops_and_resumes(capsys):
    with ProgressBar(3 * 10) as bar:
        ticks = bar.start_run("first", 10)
        for _ in range(4):
            ticks.on_train_epoch_end(fake_trainer(train_loss=1.5, val_loss=2.0), None)
        assert bar.done == 4
        bar.end_run()  # stopped early after 4 epochs: the other 6 are not coming
        assert bar.done == 10
        ticks = bar.start_run("second", 10)
        ticks.on_train_start(fake_trainer(epoch=7), None)  # resumed after 7 epochs
        for _ in range(5):  # never past the run's own end
            ticks.on_train_epoch_end(fake_trainer(), None)
        assert bar.done == 20
        bar.end_run()
        assert bar.done == 20
    err = capsys.readouterr().err
    assert "second" in err and "20/30" in err and "val_loss=2" in err
    off = ProgressBar(10, enabled=False)
    off.start_run("silent", 10).on_train_epoch_end(fake_trainer(), None)
    assert off.done == 0 and capsys.readouterr().err == ""
