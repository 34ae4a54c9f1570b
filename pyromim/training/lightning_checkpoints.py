"""Lightning's training checkpoints (``*.ckpt``, to resume from): atomic writes and loading that never unpickles arbitrary objects.

(A trained model and its spec, ``model.pt``, are :mod:`pyromim.models.model_file`.)

A checkpoint is written to a temporary file in the destination folder, flushed
to disk, then moved over the destination with :func:`os.replace` (atomic on
POSIX and Windows), so a run killed at any moment leaves either the previous or
the new complete file, never a torn one.  Loading uses
``torch.load(..., weights_only=True)``: only tensors and plain containers and
numbers are accepted.

Every checkpoint carries a SHA-256 of its content (``"pyromim_sha256"``), which
loading verifies: a corrupted, truncated, edited or foreign file is refused
with a one-line :class:`~pyromim.models.CheckpointError` naming it, so a run is
never evaluated or resumed from weights other than those it saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from pyromim._atomic import atomic_write
from pyromim._integrity import CheckpointError, content_sha256, one_line, verify

#: The checkpoint entry holding the SHA-256 of all the others.
CHECKSUM_KEY = "pyromim_sha256"


def save_atomically(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``.

    A dict gets a ``"pyromim_sha256"`` entry, the checksum :func:`load_checkpoint` verifies.
    """
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
        obj[CHECKSUM_KEY] = content_sha256(obj)
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomically` (or training) and verify its checksum.

    Loading uses ``weights_only=True`` (no arbitrary unpickling). Anything but an
    intact pyromim checkpoint raises :class:`~pyromim.models.CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    advice = "resume or evaluate from another checkpoint (best.ckpt, last.ckpt, model.pt) or train again"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged zip or pickle raises many kinds
        raise CheckpointError(
            f"{path}: refused to load: not a checkpoint that loads with weights_only=True "
            f"(corrupted, truncated, tampered with, or not written by pyromim; {one_line(err)}); {advice}"
        ) from err
    if not isinstance(state, dict):
        state = {}  # refused below: no checksum
    verify(path, state.pop(CHECKSUM_KEY, None), content_sha256(state), advice)
    return state


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint plugin: atomic saves, ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        save_atomically(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError("pyromim checkpoints are always loaded with weights_only=True")
        return load_checkpoint(path, map_location=map_location)
