"""Every private torch, Pyro and Lightning entry point pyromim calls, and nothing else.

Private functions change without notice, so each one is reached through this
module only, and ``tests/test_ops_private.py`` checks that the installed versions
still have it (a failure there names the function an upgrade removed). Where a
fallback exists it is taken when the function is missing, and tested that way:

* :func:`tracing_supported` is ``False`` when torch lacks the tracing entry point
  or compilation units of its own; :class:`~pyromim.infer.JitTrace_MIM` then
  compiles through Pyro's public :func:`pyro.ops.jit.trace` (graphs in torch's
  global compilation unit);
* :func:`simplify_graph` leaves a graph as traced when torch lacks a graph pass;
* :func:`graph_executor_optimize` and :func:`torch_function_mode_depth` fall back
  to torch's defaults (optimised execution, no function mode) when missing;
* :func:`module_local_params` is ``False`` when Pyro lacks its flag (the global
  param store, Pyro's default);
* :func:`model_factors` (the summed model factors of Pyro's
  ``TraceEnum_ELBO``) and :func:`hashable_args_kwargs` (Pyro's compiled-function
  cache key) have no fallback: they fail with an error naming the Pyro version,
  which ``pyproject.toml`` caps for that reason;
* :func:`log_pending_epoch_metrics` reaches into Lightning's fit loop (its pending
  epoch metrics, step counter and logger connector) and has no fallback either:
  the ``train`` extra caps Lightning for it. The checkpoint callbacks of
  :mod:`pyromim.training.lightning_checkpoints` override Lightning's protected
  ``ModelCheckpoint._save_checkpoint`` and its bookkeeping attributes; the same test
  file checks that they still exist.
* :func:`start_ranks_with_sigint_held` wraps the method by which Lightning's script
  launcher starts the other data-parallel processes; without it (another
  Lightning version) they start as Lightning starts them, and a Ctrl-C in the
  first moments of a rank's start-up ends that rank (and Lightning the run).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pyro
import pyro.ops.jit
import torch

__all__ = [
    "compile_graph",
    "create_graph_by_tracing",
    "graph_executor_optimize",
    "hashable_args_kwargs",
    "log_pending_epoch_metrics",
    "model_factors",
    "module_local_params",
    "simplify_graph",
    "start_ranks_with_sigint_held",
    "torch_function_mode_depth",
    "tracing_supported",
]

#: The graph passes :func:`simplify_graph` runs, in order.
GRAPH_PASSES = ("_jit_pass_peephole", "_jit_pass_constant_propagation", "_jit_pass_dce")


def _missing(owner: str, name: str) -> RuntimeError:
    return RuntimeError(
        f"pyromim needs {owner}.{name}, which this version of {owner.split('.')[0]} "
        f"(torch {torch.__version__}, pyro {pyro.__version__}) does not have; install "
        f"the versions pyproject.toml allows."
    )


def tracing_supported() -> bool:
    """Whether torch can trace a function into a compilation unit of pyromim's own."""
    return hasattr(torch._C, "_create_graph_by_tracing") and hasattr(torch._C, "CompilationUnit")


def _unnamed(value: Any) -> str:
    """The tracer's name for a traced value: none. torch.jit.trace looks each one up among
    the Python frames' variables, a tenth of the time tracing toy4's loss takes."""
    return ""


def create_graph_by_tracing(fn: Callable[..., Any], inputs: list, strict: bool, force_outplace: bool) -> Any:
    """What :func:`torch.jit.trace` does for a function, without registering the result
    in torch's global compilation unit: the traced graph of ``fn(*inputs)``."""
    graph, _ = torch._C._create_graph_by_tracing(fn, inputs, _unnamed, strict, force_outplace)
    return graph


def compile_graph(graph: Any, name: str) -> Any:
    """A callable TorchScript function running ``graph``, in a compilation unit of its own
    (freed with the function)."""
    return torch._C.CompilationUnit().create_function(name, graph)


def simplify_graph(graph: Any, keep_sizes: bool) -> Any:
    """``graph`` after peephole (folding sizes unless ``keep_sizes``), constant propagation
    and dead-code elimination, on a copy; ``graph`` itself where torch lacks a pass or a
    pass fails."""
    if not all(hasattr(torch._C, name) for name in GRAPH_PASSES):
        return graph
    simplified = graph.copy()
    try:
        torch._C._jit_pass_peephole(simplified, keep_sizes)
        torch._C._jit_pass_constant_propagation(simplified)
        torch._C._jit_pass_dce(simplified)
    except RuntimeError:
        return graph
    return simplified


def graph_executor_optimize() -> bool:
    """Whether TorchScript's graph executor optimises (a per-thread setting); ``True``,
    torch's default, where torch does not say."""
    getter = getattr(torch._C, "_get_graph_executor_optimize", None)
    return True if getter is None else bool(getter())


def torch_function_mode_depth() -> int:
    """How many torch function modes are active on this thread (0 where torch does not say)."""
    return int(getattr(torch._C, "_len_torch_function_stack", lambda: 0)())


def hashable_args_kwargs(args: tuple, kwargs: dict) -> Any:
    """The cache key :class:`pyro.ops.jit.CompiledFunction` gives a call's arguments."""
    key = getattr(pyro.ops.jit, "_hashable_args_kwargs", None)
    if key is None:
        raise _missing("pyro.ops.jit", "_hashable_args_kwargs")
    return key(args, kwargs)


def model_factors(model_trace: Any, guide_trace: Any) -> Any:
    """The model's log-density factors, grouped by plates, that ``TraceEnum_ELBO`` sums
    enumerated sites out of (Pyro's ``_compute_model_factors``)."""
    try:
        from pyro.infer.traceenum_elbo import _compute_model_factors
    except ImportError as err:
        raise _missing("pyro.infer.traceenum_elbo", "_compute_model_factors") from err
    return _compute_model_factors(model_trace, guide_trace)


def module_local_params() -> bool:
    """Whether Pyro keeps ``PyroModule`` parameters in the modules instead of its global store."""
    try:
        from pyro.nn.module import _is_module_local_param_enabled
    except ImportError:
        return False
    return bool(_is_module_local_param_enabled())


def log_pending_epoch_metrics(trainer: Any) -> None:
    """Log the metrics Lightning holds for the epoch that is ending, at the step its fit loop
    logs epoch-end metrics at (one before the current count), as it would after the epoch's
    checkpoint; ``trainer`` is a ``lightning.pytorch.Trainer``."""
    epoch_loop = trainer.fit_loop.epoch_loop
    pending = epoch_loop._results.metrics(False)["log"]
    if pending:
        epoch_loop._batches_that_stepped -= 1
        try:
            trainer._logger_connector.log_metrics(pending)
        finally:
            epoch_loop._batches_that_stepped += 1


def start_ranks_with_sigint_held(trainer: Any) -> None:
    """Have the trainer's launcher start the other data-parallel processes with SIGINT blocked.

    A blocked signal stays pending through ``fork`` and ``exec``, so a Ctrl-C while a rank
    starts up waits for training's handler (:func:`pyromim.training.interrupts.stop_on_sigint`
    unblocks it) instead of ending the rank half-started, which makes Lightning kill the whole
    run; a signal to this process while it starts them is taken when they have started.
    ``trainer`` is a ``lightning.pytorch.Trainer``; nothing changes where its strategy starts no
    processes or Lightning lacks the method.
    """
    launcher: Any = getattr(trainer.strategy, "launcher", None)
    start = getattr(launcher, "_call_children_scripts", None)
    if start is None or not hasattr(signal, "pthread_sigmask"):
        return

    def start_held() -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    launcher._call_children_scripts = start_held
