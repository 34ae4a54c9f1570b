"""Handing data generated on the decoder side of MIM to a guide.

Symmetric MIM evaluates the guide ``q(z|x)`` at pairs ``(x, z)`` drawn from the
model, ``z ~ p(z)``, ``x ~ p(x|z)``. Pyro has no generic way to pass generated
data to a guide, so :class:`~pyromim.Trace_MIM` rewrites the guide's arguments:
each observed site's generated value replaces the guide argument that carries
that site's data. Which argument that is comes from, in order:

1. an explicit ``guide_inputs`` given to the loss: a mapping
   ``{observed site name: guide parameter name}``, or a callable
   ``guide_inputs(generated, args, kwargs) -> (args, kwargs)`` that builds the
   guide's arguments itself;
2. a guide parameter with the same name as the observed site (``model(x)`` with
   ``pyro.sample("x", ..., obs=x)`` and ``guide(x)``);
3. the unique guide argument that *is* the observed tensor (``obs=data`` with
   ``guide(data)``).

Anything else is an error that names the site and the guide's parameters;
pyromim never guesses.

When the observed site sits in a subsampled plate and the guide receives the
full data set (it indexes the batch itself), the generated batch is scattered
into a copy of the full tensor at the plate's subsample indices, so that the
guide's own indexing picks out the generated values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

GuideInputsHook = Callable[[Mapping[str, torch.Tensor], tuple, dict], tuple]
GuideInputs = Mapping[str, str] | GuideInputsHook | None

__all__ = ["GuideInputs", "GuideInputsError", "substitute_generated"]


class GuideInputsError(ValueError):
    """Generated data cannot be matched unambiguously to the guide's arguments."""


def _signature(fn: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _parameter_locations(sig: inspect.Signature | None, args: tuple, kwargs: dict):
    """Map each named guide parameter to where its value is passed:
    ``("arg", i)`` for a positional argument, ``("kw", name)`` otherwise."""
    locations: dict[str, tuple[str, Any]] = {}
    accepts_kwargs = False
    if sig is None:
        return locations, True
    position = 0
    for name, param in sig.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            position = len(args)
            continue
        positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
        if positional and position < len(args) and name not in kwargs:
            locations[name] = ("arg", position)
            position += 1
        elif param.kind is not param.POSITIONAL_ONLY:
            locations[name] = ("kw", name)
    return locations, accepts_kwargs


def _identity_locations(value: torch.Tensor, args: tuple, kwargs: dict):
    found = [("arg", i) for i, a in enumerate(args) if a is value]
    found += [("kw", k) for k, a in kwargs.items() if a is value]
    return found


def _describe(sig: inspect.Signature | None) -> str:
    if sig is None:
        return "(signature unavailable)"
    return str(sig)


def _resolve(
    site: str,
    sig: inspect.Signature | None,
    args: tuple,
    kwargs: dict,
    encoder_value: torch.Tensor | None,
    explicit: Mapping[str, str] | None,
) -> tuple[str, Any]:
    locations, accepts_kwargs = _parameter_locations(sig, args, kwargs)
    if explicit is not None and site in explicit:
        target = explicit[site]
        if target in locations:
            return locations[target]
        if accepts_kwargs:
            return ("kw", target)
        raise GuideInputsError(
            f"guide_inputs maps observed site '{site}' to guide parameter "
            f"'{target}', but the guide {_describe(sig)} has no such parameter. "
            f"Use one of: {', '.join(locations) or '(none)'}."
        )
    if site in locations:
        return locations[site]
    found = _identity_locations(encoder_value, args, kwargs) if encoder_value is not None else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise GuideInputsError(
            f"Trace_MIM: the data of observed site '{site}' is passed to the guide "
            f"{_describe(sig)} in {len(found)} places ({found}); cannot tell which "
            f"one to replace with generated data. Pass "
            f"guide_inputs={{'{site}': '<parameter name>'}} to Trace_MIM."
        )
    raise GuideInputsError(
        f"Trace_MIM(symmetric=True) must hand the data generated at observed site "
        f"'{site}' to the guide, but the guide {_describe(sig)} has no parameter "
        f"named '{site}' and none of its arguments is the observed tensor. Pass "
        f"guide_inputs={{'{site}': '<guide parameter name>'}} to Trace_MIM, or a "
        f"callable guide_inputs(generated, args, kwargs) -> (args, kwargs)."
    )


def _scatter_into_full(
    original: Any, generated: torch.Tensor, site: dict, subsample_indices: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Place a generated minibatch into a copy of the full data tensor when the
    guide receives the full data set and subsamples it itself."""
    if not isinstance(original, torch.Tensor) or original.dim() == 0:
        return generated
    if generated.shape[generated.dim() - original.dim() :] == original.shape:
        return generated  # same data shape (possibly with particle dims on the left)
    event_dim = site["fn"].event_dim
    for frame in site["cond_indep_stack"]:
        if frame.dim is None or frame.full_size is None:
            continue
        if frame.full_size == frame.size or frame.name not in subsample_indices:
            continue
        tensor_dim = frame.dim - event_dim
        if -original.dim() > tensor_dim or original.shape[tensor_dim] != frame.full_size:
            continue
        batch_shape = generated.shape[: generated.dim() - original.dim()]
        base = original.detach().to(generated.dtype).expand(batch_shape + original.shape)
        dim = base.dim() + tensor_dim
        return torch.index_copy(base, dim, subsample_indices[frame.name], generated)
    raise GuideInputsError(
        f"Trace_MIM: generated data at observed site '{site['name']}' has shape "
        f"{tuple(generated.shape)} but the guide argument it replaces has shape "
        f"{tuple(original.shape)}, and no subsampled plate explains the difference. "
        f"Pass a callable guide_inputs(generated, args, kwargs) -> (args, kwargs)."
    )


def substitute_generated(
    guide: Callable,
    args: tuple,
    kwargs: dict,
    generated_sites: Mapping[str, dict],
    encoder_values: Mapping[str, torch.Tensor],
    subsample_indices: Mapping[str, torch.Tensor],
    guide_inputs: GuideInputs = None,
) -> tuple[tuple, dict]:
    """Return the guide's ``(args, kwargs)`` with each observed site's data
    replaced by the value generated at that site on the decoder side.

    :param guide: the user's guide (un-wrapped, for its signature).
    :param generated_sites: decoder-side trace sites of the observed sites.
    :param encoder_values: observed values of the same sites on the encoder side.
    :param subsample_indices: subsample indices of the decoder-side plates.
    :param guide_inputs: an explicit mapping or hook, see the module docstring.
    """
    generated = {name: site["value"] for name, site in generated_sites.items()}
    if callable(guide_inputs) and not isinstance(guide_inputs, Mapping):
        result = guide_inputs(generated, args, kwargs)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise GuideInputsError(
                f"guide_inputs hook must return a pair (args, kwargs) for the guide, got {type(result).__name__}."
            )
        new_args, new_kwargs = result
        return tuple(new_args), dict(new_kwargs)
    sig = _signature(guide)
    new_args, new_kwargs = list(args), dict(kwargs)
    for name, site in generated_sites.items():
        kind, where = _resolve(name, sig, args, kwargs, encoder_values.get(name), guide_inputs)
        if kind == "arg":
            new_args[where] = _scatter_into_full(args[where], site["value"], site, subsample_indices)
        else:
            new_kwargs[where] = _scatter_into_full(kwargs.get(where), site["value"], site, subsample_indices)
    return tuple(new_args), new_kwargs
