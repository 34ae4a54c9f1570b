"""Finding which term of an objective went non-finite."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, cast

import pyro.poutine as poutine
import torch

from pyromim._integrity import one_line
from pyromim.infer.errors import NonFiniteLossError, side_of

__all__ = ["NonFiniteLossError", "describe_invalid_distribution", "describe_nonfinite", "nonfinite_terms"]


def nonfinite_terms(model: Callable, guide: Callable, *args: object, **kwargs: object) -> list[str]:
    """Sample sites whose log-density is not finite in one guide + replayed-model pass.

    Each returned entry names the term of the objective it feeds, e.g.
    ``"model site 'x' (log p)"`` or ``"guide site 'z' (log q)"``; parameters with
    non-finite values are listed as ``"param 'name'"``.  Used only to explain a
    failure, so it draws fresh samples and never raises.
    """
    found: list[str] = []
    try:
        with torch.no_grad(), poutine.trace(param_only=True) as params:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
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
        found.append(f"(diagnostic pass failed: {type(err).__name__}: {one_line(err)})")
    return found


#: torch's message when a distribution is built from NaN/inf or out-of-support parameters.
_INVALID = re.compile(r"Expected parameter (\w+) .*? of distribution (\w+)")


def is_invalid_distribution(err: BaseException) -> bool:
    """Whether ``err`` is torch's refusal of a distribution parameter (NaN/inf from a diverging network)."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return isinstance(err, ValueError) and bool(_INVALID.match(first)) and "invalid values" in first


def _frames(tb: TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def describe_invalid_distribution(err: BaseException, params: Iterable[tuple[str, torch.Tensor]]) -> str:
    """One line naming what torch's invalid-parameter error ``err`` says and where: the program
    (model or guide), the sample path (encoder or decoder side, for MIM objectives), the site
    after which it happened, and the parameters that are no longer finite."""
    text = str(err)
    match = _INVALID.match(text.strip())
    what = f"a {match.group(2)} distribution got invalid (NaN/inf) values of its '{match.group(1)}'" if match else ""
    frames = _frames(err.__traceback__)
    program = next((name for name in reversed(frames) if name in ("model", "guide")), None)
    side = side_of(err)
    where = [f"in the {program}" if program else "", f"on the {side} side" if side else ""]
    # Pyro appends the sites traced so far: the failing one comes after the last
    traced = (
        re.findall(r"^\s*(\S+) dist\b", text.split("Sample Sites:")[-1], flags=re.M) if "Sample Sites:" in text else []
    )
    if traced:
        where.append(f"at the site after '{traced[-1]}'")
    bad = [name for name, value in params if not bool(torch.isfinite(value.detach()).all())]
    shown = ", ".join(f"'{name}'" for name in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    parameters = f"; non-finite parameters: {shown}" if bad else ""
    return f"{what} {' '.join(w for w in where if w)}{parameters}".strip()


def describe_nonfinite(
    loss_name: str, value: float, epoch: int, batch: int, terms: list[str], checkpoint: str, stage: str = "training"
) -> str:
    """The message of :class:`NonFiniteLossError` raised by training (the same class
    ``Trace_MIM`` raises, which names the site and side itself)."""
    where = (
        "; ".join(t.rstrip(".") for t in terms)
        if terms
        else "no model/guide site is non-finite, so the objective's own terms are"
    )
    kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was written yet"
    return (
        f"{loss_name} objective is {value} at epoch {epoch}, {stage} batch {batch}; non-finite terms: {where}. "
        f"Training stopped and {kept}. Lower the learning rate, clamp scales/log-variances, or check the data."
    )
