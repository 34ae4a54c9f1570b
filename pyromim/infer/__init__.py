"""MIM objectives for Pyro programs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyromim._lazy import lazy_exports

if TYPE_CHECKING:
    from pyromim.infer.entropy_ablation import Trace_ELBO_plus_H, Trace_MIM_minus_H
    from pyromim.infer.errors import (
        CollapsedScaleError,
        CollapsingPriorWarning,
        CompilationError,
        GuideInputsError,
        NonFiniteDataError,
        NonFiniteLossError,
        TeacherForcingError,
    )
    from pyromim.infer.terms import LossTerm, loss_terms
    from pyromim.infer.trace_mim import JitTrace_MIM, Trace_MIM

__all__ = [
    "Trace_MIM",
    "JitTrace_MIM",
    "CompilationError",
    "NonFiniteLossError",
    "NonFiniteDataError",
    "CollapsedScaleError",
    "CollapsingPriorWarning",
    "GuideInputsError",
    "TeacherForcingError",
    "Trace_ELBO_plus_H",
    "Trace_MIM_minus_H",
    "LossTerm",
    "loss_terms",
]

# imported on first use, so that the objective registry (pyromim.infer.objectives) needs no torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "pyromim.infer.entropy_ablation": ("Trace_ELBO_plus_H", "Trace_MIM_minus_H"),
        "pyromim.infer.errors": (
            "CollapsedScaleError",
            "CollapsingPriorWarning",
            "CompilationError",
            "GuideInputsError",
            "NonFiniteDataError",
            "NonFiniteLossError",
            "TeacherForcingError",
        ),
        "pyromim.infer.terms": ("LossTerm", "loss_terms"),
        "pyromim.infer.trace_mim": ("JitTrace_MIM", "Trace_MIM"),
    },
    globals(),
)
