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
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from pyromim._atomic import atomic_copy, atomic_write
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
            f"{path}: refused to load: PyTorch's safe loading (tensors and plain data only) cannot read it "
            f"(corrupted, truncated, tampered with, or not written by pyromim; {one_line(err)}); {advice}"
        ) from err
    if not isinstance(state, dict):
        state = {}  # refused below: no checksum
    verify(path, state.pop(CHECKSUM_KEY, None), content_sha256(state), advice)
    return state


def check_training_layout(path: str | Path, state: dict[str, Any]) -> dict[str, Any]:
    """Raise :class:`~pyromim.models.CheckpointError` unless ``state`` (a loaded checkpoint) has a training
    checkpoint's layout: a ``state_dict`` of named tensors and whole-number ``epoch`` and ``global_step``.

    The checksum proves that a file is intact, not that whoever signed it wrote these entries.
    """
    weights = state.get("state_dict")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise CheckpointError(
            f"{path}: not a training checkpoint: it holds no 'state_dict' of named tensors; give a last.ckpt or "
            f"best.ckpt that training wrote"
        )
    for key in ("epoch", "global_step"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(
                f"{path}: not a training checkpoint: its '{key}' is {value!r}, not a whole number >= 0; give a "
                f"last.ckpt or best.ckpt that training wrote"
            )
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


class BestCheckpoint(ModelCheckpoint):
    """Lightning's checkpoint of the lowest monitored loss, except that its file is written
    by the :class:`LatestCheckpoint` that follows it in the same epoch-end hook, from one
    serialisation for both files; the bookkeeping (best path and score) is Lightning's.
    (Lightning runs checkpoint callbacks last, in the order given, and both decide to save
    on the same conditions, so the latest one always follows in the same hook.)"""

    pending: str | None = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self.pending = filepath
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


class LatestCheckpoint(ModelCheckpoint):
    """The checkpoint of every epoch's end (``monitor=None``), which also writes ``best``'s
    file when the epoch improved on it: the state is serialised once, into the best file,
    and the latest file is an atomic copy of its bytes. Both hold the state with both
    callbacks' bookkeeping updated (Lightning's own pair of callbacks serialises twice,
    and the first file misses the second callback's update)."""

    def __init__(self, best: BestCheckpoint, **kwargs: Any) -> None:
        super().__init__(monitor=None, **kwargs)
        self.best = best

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        best, self.best.pending = self.best.pending, None
        if best is None:
            super()._save_checkpoint(trainer, filepath)
            return
        trainer.save_checkpoint(best, self.save_weights_only)
        if trainer.is_global_zero:
            atomic_copy(best, filepath)
        trainer.strategy.barrier("LatestCheckpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self.best))
                logger.after_save_checkpoint(proxy(self))
