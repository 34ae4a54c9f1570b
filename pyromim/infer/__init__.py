"""MIM objectives for Pyro programs."""

from pyromim.infer.guide_inputs import GuideInputsError
from pyromim.infer.trace_mim import JitTrace_MIM, NonFiniteLossError, Trace_MIM

__all__ = ["Trace_MIM", "JitTrace_MIM", "NonFiniteLossError", "GuideInputsError"]
