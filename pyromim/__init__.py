"""pyromim: the Mutual Information Machine (MIM) for Pyro.

Swap ``Trace_ELBO()`` for :class:`Trace_MIM` in ``pyro.infer.SVI`` to learn a
model/guide pair with the MIM objective instead of the ELBO.
"""

from pyromim.infer import GuideInputsError, JitTrace_MIM, NonFiniteLossError, Trace_MIM

__all__ = ["Trace_MIM", "JitTrace_MIM", "NonFiniteLossError", "GuideInputsError"]
__version__ = "0.1.0"
