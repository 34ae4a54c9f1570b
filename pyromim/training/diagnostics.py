"""Finding which term of an objective went non-finite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pyro.poutine as poutine
import torch

from pyromim.infer.trace_mim import NonFiniteLossError

__all__ = ["NonFiniteLossError", "describe_nonfinite", "nonfinite_terms"]


def nonfinite_terms(model: Callable, guide: Callable, *args: object) -> list[str]:
    """Sample sites whose log-density is not finite in one guide + replayed-model pass.

    Each returned entry names the term of the objective it feeds, e.g.
    ``"model site 'x' (log p)"`` or ``"guide site 'z' (log q)"``; parameters with
    non-finite values are listed as ``"param 'name'"``.  Used only to explain a
    failure, so it draws fresh samples and never raises.
    """
    found: list[str] = []
    try:
        with torch.no_grad(), poutine.trace(param_only=True) as params:
            guide_trace = poutine.trace(guide).get_trace(*args)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
        for name, site in params.trace.nodes.items():
            value = site["value"]
            if site["type"] == "param" and value is not None and not bool(torch.isfinite(value).all()):
                found.append(f"param {name!r}")
        for label, symbol, trace in (("guide", "log q", guide_trace), ("model", "log p", model_trace)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample":
                    continue
                log_prob = cast(Any, site["fn"]).log_prob(site["value"])
                if not bool(torch.isfinite(log_prob).all()):
                    found.append(f"{label} site {name!r} ({symbol})")
    except Exception as err:  # the pass itself may fail on non-finite parameters
        found.append(f"(diagnostic pass failed: {type(err).__name__}: {err})")
    return found


def describe_nonfinite(loss_name: str, value: float, epoch: int, batch: int, terms: list[str], checkpoint: str) -> str:
    """The message of :class:`NonFiniteLossError` raised by training (the same class
    ``Trace_MIM`` raises, which names the site and side itself)."""
    where = (
        "; ".join(t.rstrip(".") for t in terms)
        if terms
        else "no model/guide site is non-finite, so the objective's own terms are"
    )
    kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was written yet"
    return (
        f"{loss_name} objective is {value} at epoch {epoch}, batch {batch}; non-finite terms: {where}. "
        f"Training stopped and {kept}. Lower the learning rate, clamp scales/log-variances, or check the data."
    )
