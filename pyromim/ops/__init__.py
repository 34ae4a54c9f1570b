"""Machinery under the objectives: the loss compiler and the private entry points of torch and Pyro.

* :mod:`pyromim.ops.jit`: compiles a loss into TorchScript graphs of its own
  (what :class:`~pyromim.infer.JitTrace_MIM` runs);
* :mod:`pyromim.ops.private`: every private torch and Pyro function pyromim calls,
  in one place, each with its fallback or a version ceiling, and each checked by
  a test that fails when an upgrade removes it.

Nothing here is public API.
"""

__all__: list[str] = []
