"""A run's per-epoch metrics log: ``metrics.csv``, kept across resumes and rewritten whole and
atomically at every row, with a TensorBoard log beside it when the tensorboard package is installed.

Used by :func:`pyromim.training.fit.fit`.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from pyromim._atomic import atomic_write
from pyromim._run_dir import RunDirectoryError
from pyromim.ops import private


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it keeps every row (starting from ``rows``) and
    rewrites the whole file atomically at each save, instead of deleting an existing file
    and appending to it."""

    def __init__(self, log_dir: str, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows)
        self._written: int | None = None  # rows in the file, once written
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        pass

    def save(self) -> None:
        # skip a row logged twice (see EpochRecords)
        self.rows.extend(row for row in self.metrics if row not in self.rows[-8:])
        self.metrics = []
        if self._written == len(self.rows):
            return  # Lightning saves again after each logged row: the file already holds it
        fields = sorted({key for row in self.rows for key in row})

        def write(f: Any) -> None:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.metrics_file_path, write, newline="")
        self._written = len(self.rows)


class RunLog(CSVLogger):
    """``metrics.csv`` of a run, written after every logged row, continuing ``rows`` (see :class:`_KeepingWriter`)."""

    def __init__(self, save_dir: Path, rows: list[dict[str, Any]]) -> None:
        super().__init__(save_dir=save_dir, name="", version="", flush_logs_every_n_steps=1)
        self._rows = rows

    @property
    @rank_zero_experiment
    def experiment(self) -> _KeepingWriter:
        if not isinstance(self._experiment, _KeepingWriter):
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._rows)
        return self._experiment


class EpochRecords(LearningRateMonitor):
    """The run's epoch-level records, in one callback (Lightning calls every hook of
    every callback at every step, some 15 ms a run per callback, measured once on ``pyromim train toy4``):

    * the learning rate, logged at each epoch's start (Lightning's ``LearningRateMonitor``);
    * ``rows``: the epoch-level metrics Lightning reports (after validation), per epoch;
    * the epoch's training row, logged when the epoch's checkpoints are written.
      Lightning logs it only after them, so a run killed in between would resume from
      the checkpoint without ever logging that row. Lightning's own logging of the
      same row afterwards is skipped by :class:`_KeepingWriter`.
    """

    def __init__(self) -> None:
        super().__init__(logging_interval="epoch")
        self.rows: dict[int, dict[str, float]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row = {"epoch": float(trainer.current_epoch + 1)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        self.rows[trainer.current_epoch + 1] = row

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Any) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if not trainer.training or not epoch_loop.batch_progress.is_last_batch:
            return  # only at the end of an epoch, when its training metrics are complete
        private.log_pending_epoch_metrics(trainer)


def rows_before(path: Path, global_step: int) -> list[dict[str, Any]]:
    """The rows of the log ``path`` logged before optimiser step ``global_step`` (those a resumed run keeps).

    :raises pyromim._run_dir.RunDirectoryError: the file is not CSV text (binary data, say), whose rows
        would otherwise be lost without a word when the resumed run rewrites it.
    """
    if not path.is_file():
        return []
    why = None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        if "\x00" in text:
            why = f"it holds NUL bytes at offset {text.index(chr(0))}, so binary data rather than CSV text"
        else:
            table = csv.DictReader(io.StringIO(text, newline=""))
            rows = [{k: v for k, v in row.items() if k and v not in ("", None)} for row in table]
    except UnicodeDecodeError as err:
        why = f"byte {err.start} is not UTF-8 text"
    except csv.Error as err:
        why = f"not a CSV table: {err}"
    except OSError as err:
        why = f"cannot read it: {err.strerror or err}"
    if why is not None:
        raise RunDirectoryError(
            f"{path}: cannot continue the run's log of per-epoch metrics ({why}); move the file out of the run "
            "directory and resume again (the new log starts at the checkpoint's epoch), or train the run anew "
            "(--overwrite; overwrite=True from Python)"
        )
    kept = []
    for row in rows:
        try:
            if int(float(row["step"])) < global_step:
                kept.append(row)
        except (KeyError, ValueError, OverflowError):  # a row without a (finite) step is not Lightning's: drop it
            continue
    return kept


def run_loggers(csv_log: RunLog, out_dir: Path) -> list[Any]:
    """The CSV log and, when the tensorboard package is installed, a TensorBoard log beside it."""
    loggers: list[Any] = [csv_log]
    if importlib.util.find_spec("tensorboard") is not None:
        # TensorBoard when installed, next to the CSV log: `tensorboard --logdir out_dir/tensorboard`
        loggers.append(TensorBoardLogger(save_dir=out_dir, name="tensorboard", version=""))
    return loggers
