"""What ``fit()`` prints from Python: one bar over the epochs, no Lightning banner, Lightning's own with verbose=True.

Lightning's bars and warnings reach the file descriptors (``capfd``); its banner and notices are log
records (``caplog``: under pytest, Lightning logs to pytest's handler instead of its own console one).
"""

import csv
import logging

import pytest
from pyro.infer import Trace_ELBO
from pyro_pairs import make_function_pair

from pyromim.data import toy4
from pyromim.training import fit

#: Lightning's banner, notices, per-batch and validation bars, and a deprecation warning from its own code.
LIGHTNING_NOISE = ("GPU available", "TPU available", "Tip", "Epoch 0", "Validation", "treespec", "stopped")


@pytest.fixture(scope="module")
def data():
    return toy4(n_train=128, n_val=64, n_test=0, seed=0)


def printed(capfd, caplog, tmp_path, data, **settings):
    capfd.readouterr()  # nothing from before
    model, guide = make_function_pair()
    with caplog.at_level(logging.INFO):
        fit(model, guide, Trace_ELBO(), data.train, data.val, out_dir=tmp_path, epochs=2, batch_size=64, **settings)
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("lightning"))
    return out, err.replace("\r", "\n") + logged


def test_fit_shows_one_epoch_bar_and_no_lightning_output(capfd, caplog, tmp_path, data):
    out, err = printed(capfd, caplog, tmp_path, data)
    assert out == ""  # stdout stays the caller's
    for noise in LIGHTNING_NOISE:
        assert noise not in err, noise
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith("training:") for line in lines), lines
    assert "2/2" in lines[-1]  # one bar, counting epochs (2), not batches (2 per epoch here, 4 in all)


def test_fit_prints_nothing_without_progress(capfd, caplog, tmp_path, data):
    assert printed(capfd, caplog, tmp_path, data, progress=False) == ("", "")


def test_fit_verbose_prints_lightnings_own_output(capfd, caplog, tmp_path, data):
    out, err = printed(capfd, caplog, tmp_path, data, verbose=True)
    both = out + err
    assert "GPU available" in both and "Epoch 0" in both and "Validation" in both
    # verbose changes what is printed, not the run: both epochs trained, checkpointed and logged
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "checkpoints" / "best.ckpt").is_file()
    with open(tmp_path / "metrics.csv", newline="") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("train_loss")}
    assert epochs == {"0", "1"}, epochs
