"""What runs print: one progress bar over the epochs of one run or of many, and nothing a user cannot act on.

* :class:`ProgressBar`: one ``tqdm`` bar (on stderr) over the epochs of a
  sequence of runs, named after the run in progress; a run that stops early
  moves the bar on by the epochs it did not need. :func:`pyromim.experiments.run`
  shows one over its own epochs, :func:`pyromim.experiments.compare` one over
  every run's (runs x epochs).
* :func:`quiet_lightning`: Lightning's banner and notices (``GPU available``,
  ``TPU available``, tips, ```Trainer.fit` stopped``) and the warnings a user
  cannot act on (:data:`UNACTIONABLE_WARNINGS`) are dropped while a run trains.
* :func:`run_details_hidden`: a run's own step-by-step messages are held back
  while :func:`~pyromim.experiments.compare` shows its bar and one line per run.

Both are off when the ``pyromim`` logger is set to ``DEBUG`` (the command
line's ``--verbose``): then Lightning's own output and every message come through.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.callbacks import Callback

#: Loggers Lightning prints its banner and notices through (at INFO).
LIGHTNING_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)

#: Warnings about choices pyromim makes on the user's behalf (messages as regular expressions):
#: in-memory data needs no loader workers, every step is logged on purpose, run
#: directories hold files before Lightning writes into them, and deprecations
#: inside Lightning's own code.
UNACTIONABLE_WARNINGS = (
    r".*does not have many workers.*",
    r".*log_every_n_steps.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*treespec.*",
)

#: Loggers of a run's own steps (data, evaluation, plots), held back by :func:`run_details_hidden`.
RUN_DETAIL_LOGGERS = (
    "pyromim.experiments.runner",
    "pyromim.experiments.datasets",
    "pyromim.experiments.evaluation",
    "pyromim.metrics",
    "pyromim.plots",
    "pyromim.training",
)


def verbose() -> bool:
    """Whether every message should come through: the ``pyromim`` logger is set to ``DEBUG``."""
    return logging.getLogger("pyromim").isEnabledFor(logging.DEBUG)


def is_extra_process() -> bool:
    """Whether this is one of the extra processes of a multi-device run (they show no bar)."""
    return any(os.environ.get(key, "0") != "0" for key in ("LOCAL_RANK", "NODE_RANK", "RANK"))


@contextmanager
def _levels(names: tuple[str, ...], level: int) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, old in zip(loggers, saved):
            lg.setLevel(old)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within: Lightning logs warnings and errors only, and :data:`UNACTIONABLE_WARNINGS` are ignored
    (unless :func:`verbose`); the loggers' levels and the warning filters are restored on exit."""
    if verbose():
        yield
        return
    with warnings.catch_warnings(), _levels(LIGHTNING_LOGGERS, logging.WARNING):
        for pattern in UNACTIONABLE_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        yield


@contextmanager
def run_details_hidden() -> Iterator[None]:
    """Within: the loggers of :data:`RUN_DETAIL_LOGGERS` pass warnings and errors only (unless :func:`verbose`)."""
    if verbose():
        yield
        return
    with _levels(RUN_DETAIL_LOGGERS, logging.WARNING):
        yield


class ProgressBar:
    """One bar over the epochs of one or more runs, on stderr; a no-op when ``enabled`` is false.

    :param total_epochs: the sum of the runs' maximum epochs.
    :param enabled: show it (never in the extra processes of a multi-device run).

    For each run, :meth:`start_run` names it and returns the Lightning callback that
    moves the bar on by one per finished epoch (pass it to :func:`~pyromim.training.fit`);
    :meth:`end_run` moves it on by the epochs an early stop left out. :meth:`write`
    prints a line above the bar.
    """

    def __init__(self, total_epochs: int, *, enabled: bool = True) -> None:
        self._bar: Any = None
        self._total = total_epochs
        self._enabled = enabled and not is_extra_process()
        self._run_end = 0

    def start_run(self, name: str, epochs: int) -> Callback:
        """Name the run about to train (``epochs`` at most) and return the callback that ticks the bar."""
        if self._enabled:
            if self._bar is None:  # drawn from the first run on, with its name
                from tqdm import tqdm

                self._bar = tqdm(total=self._total, desc=name, unit="epoch", file=sys.stderr, dynamic_ncols=True)
            self._bar.set_description(name, refresh=True)
            self._run_end = self._bar.n + epochs
        return _EpochTicks(self)

    @property
    def done(self) -> int:
        """Epochs counted so far (0 while the bar is off)."""
        return 0 if self._bar is None else int(self._bar.n)

    def end_run(self) -> None:
        """Move the bar to the end of the current run (the epochs early stopping left out)."""
        if self._bar is not None and self._run_end > self._bar.n:
            self._bar.update(self._run_end - self._bar.n)

    def tick(self, epochs: int = 1, **postfix: float) -> None:
        """Move the bar on by ``epochs`` (not past the current run's end), showing ``postfix`` values."""
        if self._bar is None:
            return
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(max(0, min(epochs, self._run_end - self._bar.n)))

    def write(self, line: str) -> None:
        """Print ``line`` on stderr above the bar (plainly when the bar is off)."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        """Leave the bar's last state on its line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._enabled = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _EpochTicks(Callback):
    """Moves a :class:`ProgressBar` on by one per finished training epoch (by the epochs already done on resume)."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and trainer.current_epoch > 0:
            self.bar.tick(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("train_loss", "val_loss")}
            self.bar.tick(1, **losses)


__all__ = ["ProgressBar", "quiet_lightning", "run_details_hidden", "verbose"]
