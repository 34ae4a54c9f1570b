"""Pyro's automatic guides under Trace_MIM: a failure inside Pyro explained.

:class:`~pyro.infer.autoguide.AutoGuideList` creates a ``pyro.plate`` for each
of the model's plates before it runs its parts (``AutoGuide._create_plates``),
and Pyro records the creation of a plate as a sample site of the plate's name
(``SubsampleMessenger._subsample``). A part that is a plain function and
creates ``pyro.plate("data", ...)`` itself therefore adds a second site
``"data"``, and tracing fails with Pyro's "Multiple sample sites named
'data'", under :class:`~pyro.infer.Trace_ELBO` too. The part has to enter the
list's own plate (``with guide.plates["data"]:``), or the guide be written as a
function that calls the automatic guide for the globals and creates the plate
once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pyro.infer.autoguide import AutoCallable, AutoGuideList

_DUPLICATE_SITE = re.compile(r"Multiple sample sites named '([^']+)'")


def _guide_lists(guide: Any) -> list[AutoGuideList]:
    """The ``AutoGuideList`` objects of ``guide``: itself, or inside it (a module, or a bound method of one)."""
    owner = guide if isinstance(guide, torch.nn.Module) else getattr(guide, "__self__", None)
    if not isinstance(owner, torch.nn.Module):
        return []
    return [module for module in owner.modules() if isinstance(module, AutoGuideList)]


def reopened_plate_error(guide: Any, err: RuntimeError) -> ValueError | None:
    """The explanation of ``err`` if it is a part of an ``AutoGuideList`` creating one of the list's plates again."""
    match = _DUPLICATE_SITE.search(str(err))
    if match is None:
        return None
    name = match.group(1)
    lists = [guide_list for guide_list in _guide_lists(guide) if name in (getattr(guide_list, "plates", None) or {})]
    if not lists:
        return None
    parts = [_name(part._guide) for part in lists[0] if isinstance(part, AutoCallable)]
    which = f"function part {' or '.join(parts)}" if parts else "a part"
    return ValueError(
        f"Trace_MIM: the AutoGuideList's {which} creates pyro.plate({name!r}, ...) after the list "
        f"created its own plate {name!r} (AutoGuideList creates every model plate before running its "
        f"parts, and Pyro records each creation as a site named {name!r}, so the second is a duplicate; "
        f"Pyro's Trace_ELBO fails the same way). In that part enter the list's plate, "
        f"`with guide.plates[{name!r}]:` (guide: the AutoGuideList), or write the guide as one function "
        f"that calls the automatic guide for the globals and then creates pyro.plate({name!r}, ...)."
    )


def _name(fn: Any) -> str:
    return repr(getattr(fn, "__name__", None) or type(fn).__name__)


def explains_reopened_plates(get_traces: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap a ``_get_traces(self, model, guide, args, kwargs)`` generator so that the
    failure described in this module's docstring is raised as a ``ValueError``
    naming the plate, the cause and the working alternatives."""

    @functools.wraps(get_traces)
    def wrapper(self, model, guide, args, kwargs):
        try:
            yield from get_traces(self, model, guide, args, kwargs)
        except RuntimeError as err:
            explained = reopened_plate_error(guide, err)
            if explained is None:
                raise
            raise explained from err

    return wrapper
