"""MIM objectives for Pyro programs."""

from pyromim.infer.entropy_ablation import Trace_ELBO_plus_H, Trace_MIM_minus_H
from pyromim.infer.guide_inputs import GuideInputsError
from pyromim.infer.trace_mim import (
    CollapsingPriorWarning,
    CompilationError,
    JitTrace_MIM,
    NonFiniteDataError,
    NonFiniteLossError,
    Trace_MIM,
)

__all__ = [
    "Trace_MIM",
    "JitTrace_MIM",
    "CompilationError",
    "NonFiniteLossError",
    "NonFiniteDataError",
    "CollapsingPriorWarning",
    "GuideInputsError",
    "Trace_ELBO_plus_H",
    "Trace_MIM_minus_H",
]
