"""Checksums of the files pyromim writes and reads back, and the error that refuses a file failing them.

``torch.save`` files and JSON carry no checksum of their own (a flipped byte
inside a tensor loads as another weight), so every file pyromim loads again
(``model.pt``, Lightning ``.ckpt`` files, ``run.json``) embeds a SHA-256 of its
content, which the loader recomputes.  The digest is taken over the loaded
objects, not the file's bytes, so it is the same on every machine and device.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A file is not a loadable pyromim checkpoint (corrupted, tampered with, or from elsewhere)."""


def one_line(err: BaseException, limit: int = 200) -> str:
    """The first line of ``err``'s message, shortened to ``limit`` characters (for one-line reports)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verify(path: Any, stored: Any, computed: str, advice: str) -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless its ``stored`` checksum is ``computed``.

    ``stored`` is ``None`` for a file without a checksum (refused too: it cannot be verified).
    """
    if stored is None:
        raise CheckpointError(
            f"{path}: refused to load: it has no pyromim checksum (not written by this version of pyromim, "
            f"so it cannot be verified); {advice}"
        )
    if stored != computed:
        raise CheckpointError(
            f"{path}: refused to load: checksum mismatch, its content changed after it was written "
            f"(file corrupted or edited); {advice}"
        )


def _feed(digest: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}:".encode())
        for item in obj:
            _feed(digest, item)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        digest.update(f"S{len(data)}:".encode() + data)
    elif isinstance(obj, bytes):
        digest.update(f"B{len(obj)}:".encode() + obj)
    elif isinstance(obj, float):
        digest.update(f"F{obj.hex()};".encode())
    elif obj is None or isinstance(obj, (bool, int)):
        digest.update(f"{type(obj).__name__}{obj!r};".encode())
    else:  # dtypes, devices and other plain values the weights-only loader accepts
        digest.update(f"O{type(obj).__qualname__}{obj!r};".encode())


def content_sha256(obj: Any) -> str:
    """SHA-256 of nested dicts, lists, tuples, tensors, strings and numbers, by value.

    Dict entries are taken in sorted key order and tensors by dtype, shape and
    bytes on the CPU, so an object and its ``torch.save``/``torch.load`` round trip
    (on any ``map_location``) have the same digest.
    """
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()
