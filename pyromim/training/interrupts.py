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

Under data-parallel training (``--devices 2 --strategy ddp``) every process
asks the others at each batch boundary whether one of them was interrupted
(one all-reduce of a flag: 0.6 ms with gloo between two processes on 2 CPU
cores shared with other work, load average about 5, measured once when the check was added), so all stop at the same batch whether the signal
reached the whole process group (Ctrl-C in a terminal) or only the launching
process (``kill -INT``); a rank stopping alone would leave the others waiting
for it in the next gradient all-reduce. Only global rank 0 prints, and the
launching process waits for the processes it started before it returns. The
ranks it starts hold SIGINT back until training begins
(:func:`pyromim.ops.private.start_ranks_with_sigint_held`): a Ctrl-C while
they import torch stops the run at its first batch, once all have started
(about 5 s on 2 CPU cores; ``tests/test_interrupts.py`` checks the stop, not the time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_only

#: Exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_STATUS = 130


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) at a batch boundary.

    :ivar checkpoint: the intact ``last.ckpt`` to resume from (``None`` if no epoch finished).
    :ivar epochs_completed: epochs finished and saved in it.
    """

    def __init__(self, checkpoint: Path | None, epochs_completed: int, global_rank: int = 0) -> None:
        self.checkpoint = checkpoint
        self.epochs_completed = epochs_completed
        #: the process's rank in data-parallel training: only rank 0 reports the interruption
        self.global_rank = global_rank
        if checkpoint is None:
            text = "training interrupted before its first epoch ended; no checkpoint to resume from"
        else:
            text = f"training interrupted after epoch {epochs_completed}; {checkpoint} holds it (resume from it)"
        super().__init__(text)


class StopRequested(Exception):
    """Raised inside Lightning's loop to end training at a batch boundary (not a
    ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)``)."""


class StopOnInterrupt(Callback):
    """Ends training at the next batch once :attr:`requested` is set (by the SIGINT handler) in
    any of the training processes."""

    def __init__(self) -> None:
        self.requested = False
        self.trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def _check(self, trainer: pl.Trainer) -> None:
        requested = self.requested
        if trainer.world_size > 1:  # every rank calls this at the same batches: one flag all-reduced
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:  # (a signal handled during the all-reduce is not lost: the next batch's sees it)
            self.requested = True
            raise StopRequested

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._check(trainer)

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._check(trainer)

    def children(self) -> list[subprocess.Popen]:
        """The training processes this one started (Lightning's DDP launcher on rank 0; else none)."""
        launcher = None if self.trainer is None else self.trainer.strategy.launcher
        return list(getattr(launcher, "procs", []))

    def wait_for_children(self, timeout: float = 30.0) -> None:
        """Wait for the processes this one started to end (they stop at the same batch); kill any left."""
        deadline = time.monotonic() + timeout
        for child in self.children():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


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
        speak = getattr(rank_zero_only, "rank", 0) == 0  # one line, not one per data-parallel process
        if stop.requested:
            if speak:
                _say(b"\ninterrupted again: exiting now\n")
            for child in stop.children():  # a terminal's Ctrl-C reached them too, a kill -INT did not
                child.kill()
            os._exit(INTERRUPTED_STATUS)
        stop.requested = True
        if speak:
            _say(b"\ninterrupt: stopping at the next batch (Ctrl-C again to exit at once)\n")

    previous = signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "pthread_sigmask"):  # a signal held back while a launched rank started comes now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["INTERRUPTED_STATUS", "StopOnInterrupt", "StopRequested", "TrainingInterrupted", "stop_on_sigint"]
