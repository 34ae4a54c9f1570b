"""Saving and loading a model together with its spec, safely.

A checkpoint is a ``torch.save`` of a plain dict holding only strings, ints
and tensors: the spec as TOML text and the model's ``state_dict``. Loading
uses ``torch.load(..., weights_only=True)``, which refuses to unpickle
anything else, so a tampered file cannot run code; it then rebuilds the model
from the embedded spec and loads the weights strictly.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from pyromim.models.build import build_model
from pyromim.models.latent_variable_model import LatentVariableModel
from pyromim.specs import ModelSpec, SpecError

FORMAT = "pyromim-model"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A file is not a loadable pyromim checkpoint (corrupted, tampered with, or from elsewhere)."""


def save_model(model: LatentVariableModel, path: str | Path) -> None:
    """Write ``model`` and its spec to ``path`` (needs ``model.spec``, set by :func:`build_model`)."""
    if getattr(model, "spec", None) is None:
        raise ValueError(
            "save_model needs model.spec: build the model with pyromim.build_model(spec), "
            "or set model.spec to the ModelSpec it was made from"
        )
    from pyromim import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyromim_version": __version__,
        "spec_toml": model.spec.to_toml(),
        "state_dict": model.state_dict(),
    }
    torch.save(payload, Path(path))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LatentVariableModel:
    """Rebuild the model saved at ``path``; raises :class:`CheckpointError` on anything unexpected."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError) as err:
        raise CheckpointError(
            f"{path}: refused to load; it is not a checkpoint that loads with weights_only=True "
            f"(corrupted, tampered with, or not written by pyromim.save_model). Details: {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pyromim model checkpoint (no '{FORMAT}' format tag)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('format_version')!r} is not supported "
            f"(this pyromim reads version {FORMAT_VERSION})"
        )
    spec_text, state = payload.get("spec_toml"), payload.get("state_dict")
    if not isinstance(spec_text, str) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint lacks its spec text or its state_dict")
    try:
        spec = ModelSpec.from_toml(spec_text, where=f"{path} (embedded spec)")
    except SpecError as err:
        raise CheckpointError(str(err)) from err
    model = build_model(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the embedded spec '{spec.name}': {err}") from err
    return model
