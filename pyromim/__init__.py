"""pyromim: the Mutual Information Machine (MIM) for Pyro.

Swap ``Trace_ELBO()`` for :class:`Trace_MIM` in ``pyro.infer.SVI`` to learn a
model/guide pair with the MIM objective instead of the ELBO, or take a
ready-made model from the spec catalogue with :func:`build_model`.
"""

from pyromim.infer import GuideInputsError, JitTrace_MIM, NonFiniteLossError, Trace_MIM
from pyromim.models import (
    CheckpointError,
    LatentVariableModel,
    build_model,
    load_model,
    save_model,
)
from pyromim.specs import ModelSpec, SpecError, available_specs

__all__ = [
    "Trace_MIM",
    "JitTrace_MIM",
    "NonFiniteLossError",
    "GuideInputsError",
    "CheckpointError",
    "LatentVariableModel",
    "ModelSpec",
    "SpecError",
    "available_specs",
    "build_model",
    "load_model",
    "save_model",
]
__version__ = "0.1.0"
