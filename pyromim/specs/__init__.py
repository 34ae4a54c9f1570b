"""Declarative model specifications: validated dataclasses that round-trip to TOML."""

from pyromim.specs.catalogue import available_specs, catalogue_dir, resolve_spec
from pyromim.specs.schema import (
    ArchitectureSpec,
    DataSpec,
    ModelSpec,
    NetworkSpec,
    SpecError,
    TrainingSpec,
)

__all__ = [
    "ArchitectureSpec",
    "DataSpec",
    "ModelSpec",
    "NetworkSpec",
    "SpecError",
    "TrainingSpec",
    "available_specs",
    "catalogue_dir",
    "resolve_spec",
]
