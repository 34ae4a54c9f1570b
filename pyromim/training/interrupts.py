"""Ctrl-C during :func:`~pyromim.training.fit`: stop at the next batch, keep the last checkpoint, say how to resume.

While a run trains (in the main thread), the first SIGINT only asks the run to
stop: the batch in progress finishes, then training ends before the next batch
(training or validation) and :func:`~pyromim.training.fit` raises
:class:`TrainingInterrupted`.  No checkpoint is written then: ``last.ckpt``
stays the complete one of the last finished epoch (checkpoints are written
atomically, so one being written when the signal came is finished first), and a
resume from it repeats the interrupted epoch exactly as an uninterrupted run
would have trained it.  A second SIGINT ends the process at once with status
130 (whatever it was writing is a temporary file, removed by the next run in
that directory; finished files are never torn).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.pytorch.callbacks import Callback

#: Exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_STATUS = 130


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) at a batch boundary.

    :ivar checkpoint: the intact ``last.ckpt`` to resume from (``None`` if no epoch finished).
    :ivar epochs_completed: epochs finished and saved in it.
    """

    def __init__(self, checkpoint: Path | None, epochs_completed: int) -> None:
        self.checkpoint = checkpoint
        self.epochs_completed = epochs_completed
        if checkpoint is None:
            text = "training interrupted before its first epoch ended; no checkpoint to resume from"
        else:
            text = f"training interrupted after epoch {epochs_completed}; {checkpoint} holds it (resume from it)"
        super().__init__(text)


class StopRequested(Exception):
    """Raised inside Lightning's loop to end training at a batch boundary (not a
    ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)``)."""


class StopOnInterrupt(Callback):
    """Ends training at the next batch once :attr:`requested` is set (by the SIGINT handler)."""

    def __init__(self) -> None:
        self.requested = False

    def _check(self) -> None:
        if self.requested:
            raise StopRequested

    def on_train_batch_start(self, *args: Any) -> None:
        self._check()

    def on_validation_batch_start(self, *args: Any) -> None:
        self._check()


def _say(line: bytes) -> None:
    # straight to file descriptor 2: a signal handler must not re-enter a Python stream being written
    try:
        os.write(2, line)
    except OSError:
        pass


@contextmanager
def stop_on_sigint(stop: StopOnInterrupt) -> Iterator[None]:
    """Within: the first SIGINT sets ``stop.requested``, a second one exits at once (status 130).

    Only in the main thread (where Python delivers signals); the previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            _say(b"\ninterrupted again: exiting now\n")
            os._exit(INTERRUPTED_STATUS)
        stop.requested = True
        _say(b"\ninterrupt: stopping at the next batch (Ctrl-C again to exit at once)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["INTERRUPTED_STATUS", "StopOnInterrupt", "StopRequested", "TrainingInterrupted", "stop_on_sigint"]
