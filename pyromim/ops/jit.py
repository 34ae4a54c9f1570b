"""Compiling a loss into TorchScript graphs, as :func:`pyro.ops.jit.trace` does, with graphs of its own.

:func:`trace` wraps a loss function in a :class:`CompiledFunction`: one graph per
call signature, traced once, with its size bookkeeping folded into constants
(:func:`simplified`), kept in a compilation unit freed with the function, and
fed its own parameters. :func:`on_fresh_stack` runs the tracing on a thread whose
Python call stack starts empty. The private torch and Pyro functions this needs
are reached through :mod:`pyromim.ops.private`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyro
import pyro.ops.jit
import pyro.poutine as poutine
import torch
from pyro.util import ignore_jit_warnings

from pyromim.ops import private

__all__ = ["CompiledFunction", "VALUE_SHAPED_OPS", "on_fresh_stack", "simplified", "trace"]


class CompiledFunction:
    """What :func:`pyro.ops.jit.trace` compiles a function into, except that each graph goes into a
    compilation unit of its own, freed with the loss, and keeps its own parameter list.

    A traced function lives in torch's global compilation unit until the process ends
    (some 3 MB per graph of toy4's loss, measured once when this class was added; a comparison of
    9 runs compiles 24 of them).
    The parameter plumbing is Pyro's: the parameters' unconstrained tensors are the
    graph's first inputs; their names are kept per graph (Pyro keeps the last graph's
    names for all, which feeds an earlier graph the wrong tensors where the
    parameter sets differ or their ``set`` order changes). Unlike Pyro's, a call does
    not compile: :meth:`compile` traces a signature, without running the graph, once
    the caller has its first call's result (from the Python loss); calls run it.
    """

    def __init__(self, fn: Callable[..., Any], ignore_warnings: bool = False, jit_options: Any = None) -> None:
        self.fn = fn
        self.ignore_warnings = ignore_warnings
        #: options of the tracer, as :func:`pyro.ops.jit.trace` takes them
        self.jit_options: dict[str, Any] = dict(jit_options or {})
        #: per graph key, the compiled graph
        self.compiled: dict[Any, Any] = {}
        #: per graph key, the names of the parameters the graph takes first
        self.param_names: dict[Any, list[str]] = {}

    def __call__(self, *args, **kwargs):
        # JitTrace_MIM compiles each signature at its first call (:meth:`compile`)
        return self.run(private.hashable_args_kwargs(args, kwargs), args)

    def compile(self, key: Any, param_names: Any, args: tuple, kwargs: dict) -> None:
        """Trace ``fn(*args, **kwargs)`` into the graph for ``key``, with the parameters
        ``param_names`` (those a run of ``fn`` uses) as its first inputs."""
        names = sorted(param_names)
        unconstrained = tuple(pyro.param(name).unconstrained() for name in names)  # type: ignore[attr-defined]

        def compiled(*params_and_args):
            constrained = {name: pyro.param(name) for name in names}
            for name, leaf in zip(names, params_and_args[: len(names)]):
                assert constrained[name].unconstrained() is leaf
            return poutine.replay(self.fn, params=constrained)(*params_and_args[len(names) :], **kwargs)

        if self.ignore_warnings:
            compiled = ignore_jit_warnings()(compiled)
        with pyro.validation_enabled(False):
            # what torch.jit.trace does for a function, into a compilation unit of our own
            graph = private.create_graph_by_tracing(
                compiled,
                list(unconstrained + args),
                self.jit_options.get("strict", True),
                self.jit_options.get("_force_outplace", False),
            )
        self.param_names[key] = names
        self.compiled[key] = private.compile_graph(simplified(graph), "pyromim_loss")

    def run(self, key: Any, args: tuple) -> Any:
        """Run the graph compiled for ``key`` on ``args``."""
        names = self.param_names[key]
        params_and_args = [pyro.param(name).unconstrained() for name in names] + list(args)  # type: ignore[attr-defined]
        with poutine.block(hide=names):
            return self.compiled[key](*params_and_args)


#: Operations whose output shape depends on tensor values (a mask's count of ``True``):
#: a graph holding one keeps its size computations instead of the traced sizes.
VALUE_SHAPED_OPS = (
    "aten::nonzero",
    "aten::nonzero_numpy",
    "aten::argwhere",
    "aten::masked_select",
    "aten::index",
    "aten::unique",
    "aten::_unique",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
    "aten::unique_dim_consecutive",
    "aten::repeat_interleave",
    "aten::bincount",
)


def simplified(graph: Any) -> Any:
    """``graph`` without the work that depends on nothing but its input shapes.

    A traced graph recomputes, at every run, the sizes Pyro's programs ask for
    (plate sizes, ``expand`` shapes, ``sum_rightmost`` dimensions) and the tensors
    built from constants alone; toy4's symmetric loss has 548 operations, 307 of
    them such bookkeeping. Each graph is specific to its input shapes (they are in
    its cache key), so TorchScript's peephole pass folds the sizes into constants
    (unless the graph holds an operation whose output shape depends on values),
    constant propagation evaluates what depends on constants alone (it leaves
    random draws and mutated tensors), and dead code goes. Values and
    gradients stay bit for bit the same: no arithmetic on data is reordered or
    merged (common subexpression elimination, which would merge repeated
    ``log`` calls, changes how gradients are summed, so it is not run). A torch
    without these passes, or a pass that fails, leaves the graph as traced.
    """
    keep_sizes = any(graph.findAllNodes(kind, True) for kind in VALUE_SHAPED_OPS)
    # (tried once on toy4's symmetric loss, a second round folded only 13 more of its 241 operations, for 3 ms
    # more per compile)
    return private.simplify_graph(graph, keep_sizes)


def trace(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """:func:`pyro.ops.jit.trace` with :class:`CompiledFunction`, or Pyro's own
    (graphs in torch's global compilation unit) where this torch lacks the
    private tracing entry points that :class:`CompiledFunction` uses."""
    if not private.tracing_supported():
        return pyro.ops.jit.trace(**options)
    return lambda fn: CompiledFunction(fn, **options)


def on_fresh_stack(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` run in a new thread, whose Python call stack starts empty.

    Compiling records, for every operation traced, the Python call stack that
    issued it; inside a training loop (Lightning's is some 40 frames deep)
    that record cost more than tracing itself: 80 ms against 45 ms for
    toy4's symmetric loss (measured once, compiling it inside ``pyromim train
    toy4``'s training loop; no benchmark repeats it). The caller waits, so nothing runs concurrently;
    its gradient mode and CUDA device are carried over, and with thread-local settings that
    would not carry (inference mode, autocast, a default device or another
    torch function mode) ``fn`` runs in place.
    """
    function_modes = private.torch_function_mode_depth()
    try:
        autocast = torch.is_autocast_enabled() or torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        autocast = torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()
    if torch.is_inference_mode_enabled() or autocast or function_modes:
        return fn(*args, **kwargs)
    grad = torch.is_grad_enabled()
    optimize = private.graph_executor_optimize()
    # the current CUDA device is per thread too (e.g. each DDP process's own GPU)
    cuda_device = torch.cuda.current_device() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            if cuda_device is not None:
                torch.cuda.set_device(cuda_device)
            with torch.set_grad_enabled(grad), torch.jit.optimized_execution(optimize):
                outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name="pyromim-compile", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
