"""pyromim: the Mutual Information Machine (MIM) for Pyro.

Swap ``Trace_ELBO()`` for :class:`Trace_MIM` in ``pyro.infer.SVI`` to learn a
model/guide pair with the MIM objective instead of the ELBO, or take a
ready-made model from the spec catalogue with :func:`build_model`.

The public API is what this package and its subpackages list in ``__all__``:

* :mod:`pyromim.infer`: the MIM objectives (``Trace_MIM`` and the ablations);
* :mod:`pyromim.metrics`: representation metrics for any model/guide pair;
* :mod:`pyromim.specs`: model specifications (TOML) and the catalogue;
* :mod:`pyromim.models`: models built from specs, saved and loaded;
* :mod:`pyromim.data`, :mod:`pyromim.nn`, :mod:`pyromim.distributions`,
  :mod:`pyromim.blocks` (priors, likelihoods, marginals): the building blocks;
* :mod:`pyromim.training` (``pyromim[train]``): Lightning training;
* :mod:`pyromim.experiments`: train, evaluate and compare runs from specs;
* :mod:`pyromim.plots` (``pyromim[plots]``): figures of runs.

Any other module or name (a leading underscore, or not listed) is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyromim._lazy import lazy_exports

if TYPE_CHECKING:
    from pyromim.infer import (
        GuideInputsError,
        JitTrace_MIM,
        NonFiniteDataError,
        NonFiniteLossError,
        Trace_ELBO_plus_H,
        Trace_MIM,
        Trace_MIM_minus_H,
    )
    from pyromim.models import (
        CheckpointError,
        LatentVariableModel,
        ParamStoreConflictError,
        build_model,
        load_model,
        save_model,
    )
    from pyromim.specs import ModelSpec, SpecError, available_specs, resolve_spec

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Trace_MIM",
    "JitTrace_MIM",
    "Trace_ELBO_plus_H",
    "Trace_MIM_minus_H",
    "NonFiniteLossError",
    "NonFiniteDataError",
    "GuideInputsError",
    "CheckpointError",
    "LatentVariableModel",
    "ParamStoreConflictError",
    "ModelSpec",
    "SpecError",
    "available_specs",
    "build_model",
    "load_model",
    "resolve_spec",
    "save_model",
]

# Each name of __all__ is imported from its module on first use (see pyromim._lazy).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "pyromim.infer": (
            "GuideInputsError",
            "JitTrace_MIM",
            "NonFiniteDataError",
            "NonFiniteLossError",
            "Trace_ELBO_plus_H",
            "Trace_MIM",
            "Trace_MIM_minus_H",
        ),
        "pyromim.models": (
            "CheckpointError",
            "LatentVariableModel",
            "ParamStoreConflictError",
            "build_model",
            "load_model",
            "save_model",
        ),
        "pyromim.specs": ("ModelSpec", "SpecError", "available_specs", "resolve_spec"),
    },
    globals(),
)
