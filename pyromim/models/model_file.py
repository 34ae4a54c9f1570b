"""The model file (``model.pt``): saving and loading a model together with its spec, safely.

(Lightning's training checkpoints, from which runs resume, are
:mod:`pyromim.training.lightning_checkpoints`.) A model file is a ``torch.save`` of a plain dict holding only strings, ints
and tensors: the spec as TOML text, the model's ``state_dict`` and a SHA-256
checksum of both. Loading uses ``torch.load(..., weights_only=True)``, which
refuses to unpickle anything else, so a tampered file cannot run code; it then
verifies the checksum (``torch.save`` files carry none of their own, so a
corrupted or edited tensor would otherwise load as other weights), rebuilds
the model from the embedded spec and loads the weights strictly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pyromim._atomic import atomic_write
from pyromim._integrity import CheckpointError, one_line
from pyromim.models.build import build_model
from pyromim.models.latent_variable_model import LatentVariableModel
from pyromim.specs import ModelSpec, SpecError

FORMAT = "pyromim-model"
FORMAT_VERSION = 2  # 2: adds "sha256"; version 1 files (no checksum) are refused: they cannot be verified


def _checksum(spec_text: str, state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the spec text and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(spec_text.encode("utf-8"))
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(model: LatentVariableModel, path: str | Path) -> None:
    """Write ``model`` and its spec to ``path`` (needs ``model.spec``, set by :func:`build_model`).

    The write is atomic: a reader (or a crash) sees the old file or the new one, never half of it.
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError(
            "save_model needs model.spec: build the model with pyromim.build_model(spec), "
            "or set model.spec to the ModelSpec it was made from"
        )
    from pyromim import __version__

    spec_text, state = spec.to_toml(), model.state_dict()
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyromim_version": __version__,
        "spec_toml": spec_text,
        "state_dict": state,
        "sha256": _checksum(spec_text, state),
    }
    atomic_write(path, lambda f: torch.save(payload, f), binary=True)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LatentVariableModel:
    """Rebuild the model saved at ``path``; raises :class:`CheckpointError` on anything unexpected."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged zip or pickle raises many kinds
        raise CheckpointError(
            f"{path}: refused to load: PyTorch's safe loading (tensors and plain data only) cannot read it "
            f"(corrupted, tampered with, or not written by pyromim train or save_model): {one_line(err)}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pyromim model checkpoint (no '{FORMAT}' format tag)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported: this pyromim reads "
            f"version {FORMAT_VERSION}, whose SHA-256 checksum it verifies; save the model again with "
            "pyromim.save_model, or train it again"
        )
    spec_text, state = payload.get("spec_toml"), payload.get("state_dict")
    if (
        not isinstance(spec_text, str)
        or not isinstance(state, dict)
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise CheckpointError(f"{path}: checkpoint lacks its spec text or a state_dict of named tensors")
    if payload.get("sha256") != _checksum(spec_text, state):
        raise CheckpointError(
            f"{path}: checksum mismatch: the stored spec or weights changed after saving "
            "(file corrupted or edited); re-save the model or restore the file"
        )
    try:
        spec = ModelSpec.from_toml(spec_text, where=f"{path} (embedded spec)")
    except SpecError as err:
        raise CheckpointError(str(err)) from err
    model = build_model(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the embedded spec '{spec.name}': {one_line(err)}") from err
    return model
