"""The cache keys of :class:`~pyromim.infer.JitTrace_MIM`'s compiled graphs.

A graph is compiled once per key and reused while the key stays the same, so the
key holds everything that changes the graph: the programs, the inputs' shapes,
and the options that change which terms are built (``beta`` is an input, so
warm-up needs no new graph). The key travels in the keyword arguments, under
names the programs never see (:func:`user_kwargs` drops them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["graph_signature", "keyed_kwargs", "program_id", "user_kwargs"]

#: the options of a MIM loss that change its graph
GRAPH_OPTIONS = ("symmetric", "guide_gradient", "decoder_gradient", "score_baseline")


def program_id(fn: Any) -> Any:
    """A key for ``fn`` that stays the same across accesses of a bound method (``vae.model``)."""
    owner, function = getattr(fn, "__self__", None), getattr(fn, "__func__", None)
    return (id(owner), id(function)) if owner is not None and function is not None else id(fn)


def keyed_kwargs(loss: Any, model: Any, guide: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict:
    """``kwargs`` with the cache key added: the programs (a bound method is a new object at
    each attribute access, so by instance and function), the inputs' shapes, and the
    loss's :data:`GRAPH_OPTIONS`."""
    keyed = dict(kwargs)
    keyed["_pyro_model_id"] = program_id(model)
    keyed["_pyro_guide_id"] = program_id(guide)
    keyed["_pyromim_shapes"] = tuple(tuple(a.shape) if torch.is_tensor(a) else None for a in args)
    keyed.update({f"_pyromim_{option}": getattr(loss, option) for option in GRAPH_OPTIONS})
    return keyed


def graph_signature(keyed: Mapping[str, Any]) -> str:
    """The key of the graph that :func:`keyed_kwargs`'s ``keyed`` arguments select."""
    return repr(sorted(keyed.items()))


def user_kwargs(kwargs: Mapping[str, Any]) -> dict:
    """The caller's keyword arguments, without the compiled path's cache keys."""
    return {k: v for k, v in kwargs.items() if not k.startswith(("_pyro_", "_pyromim_"))}
