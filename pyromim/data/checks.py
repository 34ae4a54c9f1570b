"""Checking, before any training, that data fit a model's likelihood and input size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pyromim.data.dataset import DATA_KINDS, KIND_SUPPORT, ArrayDataset, describe_values, values_fit_kind

# A hint on how to fix each (data kind -> expected kind) mismatch that has a usual fix.
_KIND_HINTS = {
    ("grey", "binary"): "binarise the data (--binarize 0.5 on the command line, load_file(..., binarize=0.5) "
    "in Python) or use a grey-level/continuous likelihood",
    ("continuous", "binary"): "binarise the data at a threshold T (--binarize T on the command line, "
    "load_file(..., binarize=T) in Python) or use a continuous likelihood",
    ("continuous", "grey"): "rescale the data to [0, 1] or use a continuous likelihood",
    ("continuous", "counts"): "the data are not integers: use a continuous likelihood",
    ("grey", "counts"): "the data are not integers: use a grey-level or continuous likelihood",
}


def _kind_hint(data: ArrayDataset, kind: str) -> str:
    """How to fix data of ``data.kind`` given to a likelihood of ``kind``."""
    if kind in ("counts", "tokens"):
        values = data.x.detach().to(torch.float64)
        integral = bool((values == torch.round(values)).all())
        if integral and bool((values < 0).any()):
            n_negative = int((values < 0).sum())
            return (
                f"the data are integers but {n_negative} of them are negative (down to {float(values.min()):g}): "
                f"{kind} are non-negative, so shift or clip the data, or use a continuous likelihood"
            )
    return _KIND_HINTS.get((data.kind, kind), f"use data of kind {kind!r} or a likelihood for {data.kind!r} data")


def _shape_line(data: ArrayDataset) -> str:
    """The spec line giving a model ``data``'s item shape, e.g. ``shape = [20]``."""
    return f"shape = [{', '.join(str(d) for d in data.event_shape)}]"


class DataMismatchError(ValueError):
    """Data that do not fit the model they are meant to train (kind or item shape)."""


def check_data_fits(data: ArrayDataset, *, event_shape: Sequence[int], kind: str) -> None:
    """Raise :class:`DataMismatchError` unless ``data`` fit a likelihood of ``kind`` over items of ``event_shape``.

    The kind check is on the values themselves: every value must lie in the
    support of ``kind`` (e.g. binary data fit a Gaussian likelihood, grey levels
    do not fit a Bernoulli one).  The message names the data source, what the
    model expects and what the data hold.
    """
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown likelihood kind {kind!r}; choose one of {DATA_KINDS}")
    expected = tuple(int(d) for d in event_shape)
    if data.event_shape != expected:
        size = math.prod(data.event_shape)
        hint = (
            " The sizes agree when flattened: load the data with flatten=True (or reshape them)."
            if size == math.prod(expected) and len(expected) == 1
            else f" Give the model items of shape {data.event_shape}: in a copy of the spec's TOML file (every "
            f"run directory holds one, spec.toml) write `{_shape_line(data)}` under [data] and train that file; "
            f"or use data of shape {expected}."
        )
        raise DataMismatchError(
            f"data {data.name!r} do not fit the model's input size: the data hold items of shape "
            f"{data.event_shape} ({size} values each) but the model expects items of shape {expected}." + hint
        )
    if not values_fit_kind(data.x, kind):
        hint = _kind_hint(data, kind)
        raise DataMismatchError(
            f"data {data.name!r} do not fit the model's likelihood: the likelihood expects {kind!r} data "
            f"({KIND_SUPPORT[kind]}) but the data are {data.kind!r} with {describe_values(data.x)}; {hint}."
        )
