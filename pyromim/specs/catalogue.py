"""The catalogue of named specs (the TOML files of the repository's ``models/``).

The files have a single source, the top-level ``models/`` directory; wheels
ship them as ``pyromim/catalogue/`` (see ``pyproject.toml``). Lookup tries the
installed location first and the checkout's ``models/`` second.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pyromim.specs.schema import ModelSpec
from pyromim.specs.validation import SpecError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def catalogue_dir() -> Path:
    """Directory holding the named ``*.toml`` specs."""
    for candidate in (_PACKAGE_DIR / "catalogue", _PACKAGE_DIR.parent / "models"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise FileNotFoundError(
        "the pyromim spec catalogue is missing: expected pyromim/catalogue/*.toml in an installed "
        "package or models/*.toml in a checkout"
    )


def available_specs() -> list[str]:
    """Names of the specs in the catalogue."""
    return sorted(p.stem for p in catalogue_dir().glob("*.toml"))


def resolve_spec(spec: str | Path | ModelSpec) -> ModelSpec:
    """A :class:`ModelSpec` from a spec object, a ``.toml`` path, or a catalogue name."""
    if isinstance(spec, ModelSpec):
        return spec.validate(f"spec '{spec.name}'")
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"expected a spec name, a .toml path or a ModelSpec, got {type(spec).__name__}")
    path = Path(spec)
    # A path when it says so (.toml) or names a file; a directory named like a
    # spec (say, an earlier run's output) does not hide the catalogue.
    if path.suffix == ".toml" or path.is_file():
        if path.is_dir():
            raise SpecError(f"{path}: is a directory, not a spec file; give a .toml file or a catalogue name")
        if not path.is_file():
            raise FileNotFoundError(f"spec file {path} does not exist")
        return ModelSpec.load(path)
    names = available_specs()
    if str(spec) not in names and path.is_dir():
        raise SpecError(
            f"{path}: is a directory, not a spec; give a .toml file or a catalogue name ({', '.join(names)})"
        )
    if str(spec) not in names:
        close = difflib.get_close_matches(str(spec), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SpecError(f"no spec named '{spec}' in the catalogue ({', '.join(names)}){hint}")
    return ModelSpec.load(catalogue_dir() / f"{spec}.toml")
