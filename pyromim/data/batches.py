"""Batches for model/guide pairs of any signature.

A *batch* is what one call of the model and guide receives:

* a tensor ``x``: called as ``model(x)`` / ``guide(x)`` (the usual VAE pair);
* a tuple or list ``(xs, ys, ...)``: called as ``model(xs, ys, ...)``
  (a conditional VAE's inputs and outputs, covariates, masks, lengths);
* a dict ``{"xs": ..., "ys": ...}``: called as ``model(xs=..., ys=...)``.

Every tensor in a tuple/dict batch whose leading dimension has the batch's
length is indexed together; other entries (``None``, numbers, tensors of
another leading size such as a shared covariate) are passed through
unchanged. The *data argument* says which entry the batch's length and the
data-space metrics (KSG mutual information) refer to: its position in a
tuple, its key in a dict; by default the first tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.trace_struct import Trace

__all__ = ["Batch", "DataArg", "batch_length", "call", "call_args", "data_tensor", "get_trace", "rebuild", "take"]

Batch = torch.Tensor | Sequence[Any] | Mapping[str, Any]
DataArg = int | str | None


def call_args(batch: Batch) -> tuple[tuple, dict]:
    """``(args, kwargs)`` that ``model`` and ``guide`` are called with."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, Mapping):
        return (), dict(batch)
    if isinstance(batch, (tuple, list)):
        return tuple(batch), {}
    raise TypeError(
        f"a batch must be a tensor, a tuple/list of the model's positional arguments or a dict of its "
        f"keyword arguments; got {type(batch).__name__}"
    )


def call(fn: Callable, batch: Batch) -> Any:
    """``fn`` called on the batch's arguments."""
    args, kwargs = call_args(batch)
    return fn(*args, **kwargs)


def get_trace(fn: Callable, batch: Batch) -> Trace:
    """``poutine.trace(fn).get_trace`` on the batch's arguments."""
    args, kwargs = call_args(batch)
    return poutine.trace(fn).get_trace(*args, **kwargs)


def rebuild(batch: Batch, args: tuple, kwargs: dict) -> Batch:
    """A batch like ``batch`` holding the arguments ``(args, kwargs)``."""
    if isinstance(batch, torch.Tensor):
        return args[0]
    if isinstance(batch, Mapping):
        return dict(kwargs)
    return type(batch)(args) if isinstance(batch, (tuple, list)) else tuple(args)


def data_tensor(batch: Batch, data_arg: DataArg = None) -> torch.Tensor:
    """The data argument of a batch (see the module docstring)."""
    if isinstance(batch, torch.Tensor):
        return batch
    args, kwargs = call_args(batch)
    if data_arg is None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value
        raise ValueError(f"the batch holds no tensor with a leading dimension: {_describe(batch)}")
    try:
        value = kwargs[data_arg] if isinstance(data_arg, str) else args[data_arg]
    except (KeyError, IndexError, TypeError):
        raise ValueError(
            f"data_arg={data_arg!r} names no entry of the batch {_describe(batch)}; give the position "
            f"of the data in a tuple batch or its key in a dict batch"
        ) from None
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        raise ValueError(f"data_arg={data_arg!r} is {type(value).__name__}, not a tensor of data points")
    return value


def batch_length(batch: Batch, data_arg: DataArg = None) -> int:
    """Number of data points in a batch: the data argument's leading size."""
    return int(data_tensor(batch, data_arg).shape[0])


def take(batch: Batch, index: slice | torch.Tensor, data_arg: DataArg = None) -> Batch:
    """The data points ``index`` of a batch: every tensor with the batch's leading size is indexed."""
    if isinstance(batch, torch.Tensor):
        return batch[index]
    n = batch_length(batch, data_arg)
    args, kwargs = call_args(batch)

    def pick(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            return value[index]
        return value

    return rebuild(batch, tuple(pick(a) for a in args), {k: pick(v) for k, v in kwargs.items()})


def _describe(batch: Batch) -> str:
    args, kwargs = call_args(batch)

    def one(value: Any) -> str:
        return f"tensor{tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"
