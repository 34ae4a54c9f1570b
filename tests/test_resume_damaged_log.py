"""Resuming a run whose ``metrics.csv`` was damaged: a one-line refusal naming the file, never a traceback."""

import csv
import shutil

import pytest

from pyromim.cli import main

QUICK = ["--n-train", "256", "--n-val", "64", "--n-test", "64", "--num-samples", "10", "--no-plots", "--no-progress"]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    out = tmp_path_factory.mktemp("damaged") / "run"
    assert main(["train", "toy4", "--epochs", "1", "--out", str(out), *QUICK]) == 0
    return out


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        (b"epoch,step\n1,\x00\x00\x00\n", "holds NUL bytes at offset 13"),
        (b"epoch,step\n\xff\xfe\x80 1,2\n", "is not UTF-8 text"),
    ],
)
def test_a_binary_metrics_csv_is_refused_on_resume_in_one_line(one_epoch, capsys, garbage, why):
    log = one_epoch / "metrics.csv"
    good = log.read_bytes()
    checkpoint = one_epoch / "checkpoints" / "last.ckpt"
    before = checkpoint.read_bytes()
    try:
        log.write_bytes(garbage)
        assert main(["train", "--resume", str(checkpoint), "--epochs", "2", "-q", "--no-plots"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"pyromim train: error: {log}: cannot continue the run's log")
        assert why in err and "move the file out of the run directory" in err and "--overwrite" in err
        assert checkpoint.read_bytes() == before  # nothing trained
        assert log.read_bytes() == garbage  # and the file is left for the user to look at
    finally:
        log.write_bytes(good)


def test_the_advice_works_a_resume_without_the_log_starts_a_new_one(one_epoch, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(one_epoch, out)
    (out / "metrics.csv").unlink()
    assert main(["train", "--resume", str(out / "checkpoints" / "last.ckpt"), "--epochs", "2", *QUICK[-2:]]) == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["epoch"] for row in rows if row.get("val_loss")} == {"1"}
