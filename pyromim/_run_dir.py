"""Claiming a run directory: never over an earlier run unless asked, never shared by two processes.

:func:`claim_run_directory` holds an exclusive lock (``.pyromim.lock``, which
records the holder's pid) for as long as a run writes into its directory; the
operating system releases it when the process ends, however it ends, so a
killed run leaves no stale lock.  Locks are advisory ``flock`` locks on POSIX
systems; elsewhere no lock is taken.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyromim._atomic import remove_stale_temporaries

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".pyromim.lock"

#: What a run writes into its directory (removed by ``overwrite=True``); other files are left alone.
RUN_OUTPUTS = (
    "spec.toml",
    "model.pt",
    "metrics.json",
    "run.json",
    "metrics.csv",
    "evaluation.json",
    "vocabulary.json",
    "hparams.yaml",
    "checkpoints",
    "tensorboard",
    "*.png",
)


class RunDirectoryError(RuntimeError):
    """An output directory that a run cannot use: it holds another run, another process writes
    into it, or it is not a directory."""


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _remove_outputs(out_dir: Path) -> None:
    for pattern in RUN_OUTPUTS:
        for path in out_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


@contextmanager
def claim_run_directory(out_dir: Path, *, resume: bool = False, overwrite: bool = False) -> Iterator[None]:
    """Create and lock ``out_dir`` for one run, refusing one that already holds a run.

    :param resume: the run continues the one in ``out_dir`` (its files stay).
    :param overwrite: remove an earlier run's outputs (:data:`RUN_OUTPUTS`) first.
    Temporary files an interrupted write left behind (``.NAME.*.tmp``) are removed.
    :raises RunDirectoryError: in one line naming the directory and what to do.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"{out_dir} is a file, not a directory; choose a directory for the run's output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = out_dir / LOCK_FILE
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise RunDirectoryError(f"{out_dir}: cannot write the run there ({err.strerror}); choose another directory")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirectoryError(
                    f"{out_dir} is in use by another pyromim process (pid {_holder(lock)}, lock file {lock}); "
                    "wait for it to end or choose another output directory"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for folder in (out_dir, out_dir / "checkpoints"):
            remove_stale_temporaries(folder)
        if not resume:
            earlier = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_FILE)
            if earlier and not overwrite:
                shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
                raise RunDirectoryError(
                    f"{out_dir} already holds files ({shown}); pass --overwrite (overwrite=True) to replace "
                    f"the run there, --resume {out_dir / 'checkpoints' / 'last.ckpt'} to continue it, "
                    "or choose another output directory"
                )
            _remove_outputs(out_dir)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with the next holder)
