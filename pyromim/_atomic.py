"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(
    path: str | Path, write: Callable[[IO[Any]], Any], *, binary: bool = False, newline: str | None = None
) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, flush it to disk, then move it over ``path``.

    The folder is created if needed; on any error the temporary file is removed
    and ``path`` is left as it was.

    :param binary: open the temporary file in binary mode (``torch.save``).
    :param newline: passed to :func:`open` in text mode (``""`` for :mod:`csv`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file readable by its owner only: give it the mode open() would
        os.chmod(tmp, 0o666 & ~_umask())
        f: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The names of :func:`atomic_write`'s temporary files: ``.NAME.RANDOM.tmp``.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that writes interrupted by a crash or kill left in ``folder``.

    Only call it when no other process writes into ``folder``. Returns the files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and _TEMPORARY.match(p.name)]
    for path in stale:
        path.unlink()
    return stale


def atomic_copy(source: str | Path, path: str | Path) -> Path:
    """Copy the file ``source`` to ``path`` atomically (see :func:`atomic_write`)."""
    with open(source, "rb") as src:
        return atomic_write(path, lambda f: shutil.copyfileobj(src, f), binary=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text))
