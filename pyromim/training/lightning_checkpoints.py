"""Lightning's training checkpoints (``*.ckpt``, to resume from): atomic writes and loading that never unpickles arbitrary objects.

(A trained model and its spec, ``model.pt``, are :mod:`pyromim.models.model_file`.)

A checkpoint is written to a temporary file in the destination folder, flushed
to disk, then moved over the destination with :func:`os.replace` (atomic on
POSIX and Windows), so a run killed at any moment leaves either the previous or
the new complete file, never a torn one.  Loading uses
``torch.load(..., weights_only=True)``: only tensors and plain containers and
numbers are accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from pyromim._atomic import atomic_write


def save_atomically(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


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
