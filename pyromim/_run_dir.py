"""Claiming a run directory: never over an earlier run unless asked, never shared by two processes.

:func:`claim_run_directory` holds an exclusive lock (``.pyromim.lock``, which
records the holder's pid) for as long as a run writes into its directory; the
operating system releases it when the process ends, however it ends, so a
killed run leaves no stale lock.  Locks are advisory ``flock`` locks on POSIX
systems; elsewhere no lock is taken.

This module sits at the package's top level, not in :mod:`pyromim.experiments`, because
the command line needs it before any command runs, and importing that package loads
Lightning and torch.
"""

from __future__ import annotations

import json
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

#: What every run writes into its directory (removed by ``--overwrite``, ``overwrite=True``), besides the plots its
#: ``run.json`` lists (:data:`MANIFEST`); other files, a user's own PNGs among them, are left alone.
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
)

#: The file whose ``"files"`` list names the outputs a finished run wrote (plots included).
MANIFEST = "run.json"


class RunDirectoryError(RuntimeError):
    """An output directory that a run cannot use: it holds another run, another process writes
    into it, or it is not a directory."""


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _listed_outputs(out_dir: Path) -> list[str]:
    """The file names the run's manifest lists (plain names in ``out_dir`` only; none if it is unreadable)."""
    try:
        files = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and f not in ("", ".", "..") and Path(f).name == f]


def _remove_outputs(out_dir: Path) -> None:
    for name in [*_listed_outputs(out_dir), *RUN_OUTPUTS]:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _holds_a_run(out_dir: Path, resume_hint: bool) -> RunDirectoryError | None:
    """The refusal of a directory that already holds files, if it does."""
    earlier = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_FILE and not _is_temporary(p.name))
    if not earlier:
        return None
    shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
    last = out_dir / "checkpoints" / "last.ckpt"
    resume = f", --resume {last} (resume= from Python) to continue it" if resume_hint and last.is_file() else ""
    return RunDirectoryError(
        f"{out_dir} already holds files ({shown}); pass --overwrite (overwrite=True from Python) to replace the "
        f"run there{resume}, or choose another output directory"
    )


def _in_use(out_dir: Path, lock: Path) -> RunDirectoryError:
    return RunDirectoryError(
        f"{out_dir} is in use by another pyromim process (pid {_holder(lock)}, lock file {lock}); "
        "wait for it to end or choose another output directory"
    )


def check_run_directory(
    out_dir: Path, *, resume: bool = False, overwrite: bool = False, resume_hint: bool = True
) -> None:
    """Refuse a directory that :func:`claim_run_directory` would refuse: a file, one another
    process holds, or (unless ``resume`` or ``overwrite``) one that holds files. Of its files,
    only the temporary ones a killed run left behind are removed.

    Called before any data are loaded, so that a refusal comes at once.
    :param resume_hint: suggest ``--resume`` (a command that accepts it) when the directory holds a checkpoint.
    :raises RunDirectoryError: in one line naming the directory and what to do.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"{out_dir} is a file, not a directory; choose a directory for the run's output")
    if not out_dir.is_dir():
        return
    lock = out_dir / LOCK_FILE
    if fcntl is not None and lock.is_file():
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _in_use(out_dir, lock) from None
            finally:
                os.close(fd)
    for folder in (out_dir, out_dir / "checkpoints"):  # no process holds it: what a killed one left
        remove_stale_temporaries(folder)
    if not resume and not overwrite:
        refusal = _holds_a_run(out_dir, resume_hint)
        if refusal is not None:
            raise refusal


@contextmanager
def claim_run_directory(
    out_dir: Path, *, resume: bool = False, overwrite: bool = False, resume_hint: bool = True
) -> Iterator[None]:
    """Create and lock ``out_dir`` for one run, refusing one that already holds a run.

    :param resume: the run continues the one in ``out_dir`` (its files stay).
    :param overwrite: remove an earlier run's outputs first (:data:`RUN_OUTPUTS` and the files its
        :data:`MANIFEST` lists; nothing else).
    :param resume_hint: see :func:`check_run_directory`.
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
                raise _in_use(out_dir, lock) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for folder in (out_dir, out_dir / "checkpoints"):
            remove_stale_temporaries(folder)
        if not resume:
            refusal = None if overwrite else _holds_a_run(out_dir, resume_hint)
            if refusal is not None:
                raise refusal
            _remove_outputs(out_dir)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with the next holder)
