"""Handing data generated on the decoder side of MIM to a guide.

Symmetric MIM evaluates the guide ``q(z|x)`` at pairs ``(x, z)`` drawn from the
model, ``z ~ p(z)``, ``x ~ p(x|z)``. Pyro has no generic way to pass generated
data to a guide, so :class:`~pyromim.Trace_MIM` rewrites the guide's arguments:
each observed site's generated value replaces the data it observed in the
guide's arguments. Where that data is comes from, in order:

1. an explicit ``guide_inputs`` given to the loss: a mapping
   ``{observed site name: guide parameter name}``, or a callable
   ``guide_inputs(generated, args, kwargs) -> (args, kwargs)`` that builds the
   guide's arguments itself;
2. a guide parameter with the same name as the observed site (``model(x)`` with
   ``pyro.sample("x", ..., obs=x)`` and ``guide(x)``);
3. the unique guide argument that *is* the observed tensor (``obs=data`` with
   ``guide(data)``), also inside a dict, list or tuple argument
   (``obs=batch["x"]`` with ``guide(batch)``);
4. the unique guide argument of which the observed tensor is a *view*:
   ``obs=x.reshape(-1, 784)``, ``x.view(...)``, ``x.flatten(1)``, a slice
   ``x[:, t]`` (several sites may each observe a slice of one argument, as a
   deep Markov model observes each time step). The generated values are written
   into a copy of the argument at the elements the site observed;
5. the unique guide argument from which the model *selects* the observed
   elements by any indexing (a boolean mask ``ys[xs == -1]``, an index tensor
   ``data[idx]``) followed by views: found by running the model once more with
   that argument replaced by a tensor that numbers its elements, and checked
   against the observed data. Costs one extra model run per step, only for such
   programs.

Generated data whose shape differs from the argument it replaces but has the
same number of elements is reshaped to the argument's shape (under
``vectorize_particles`` with the particle dimensions kept on the left). Elements
of an argument the model does not observe keep their values.

When none of these decides, one :class:`GuideInputsError` names the site, the
guide's signature and the ``guide_inputs`` value to pass.

When the observed site sits in a subsampled plate and the guide receives the
full data set (it indexes the batch itself), the generated batch is scattered
into a copy of the full tensor at the plate's subsample indices, so that the
guide's own indexing picks out the generated values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.trace_struct import Trace
from pyro.util import get_rng_state, set_rng_state

from pyromim.infer.errors import GuideInputsError

GuideInputsHook = Callable[[Mapping[str, torch.Tensor], tuple, dict], tuple]
GuideInputs = Mapping[str, str] | GuideInputsHook | None

__all__ = ["GuideInputs", "GuideInputsError", "VECTORIZED_PARTICLES_HINT", "substitute_generated"]

#: Where a value sits in ``(args, kwargs)``: ``("arg", i, *keys)`` or ``("kw", name, *keys)``.
Location = tuple

#: What to change in a guide when generated data has particle dimensions on the left.
VECTORIZED_PARTICLES_HINT = (
    "Under vectorize_particles the data given to the guide on the decoder side is generated "
    "by the model and has a particle dimension on the left: size data plates from the right "
    "(pyro.plate('data', x.shape[-2]) for (batch, features) data, x.shape[-3] for (batch, h, w) "
    "images, or an explicit size), not x.shape[0], and keep leading dimensions in the encoder "
    "(x.reshape(x.shape[:-2] + (-1,)) or x.flatten(-2), not x.reshape(-1, 784))."
)


def _signature(fn: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _parameter_locations(sig: inspect.Signature | None, args: tuple, kwargs: dict):
    """Map each named guide parameter to where its value is passed:
    ``("arg", i)`` for a positional argument, ``("kw", name)`` otherwise."""
    locations: dict[str, Location] = {}
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


def _describe(sig: inspect.Signature | None) -> str:
    if sig is None:
        return "(signature unavailable)"
    return str(sig)


# ----------------------------------------------------------------------------- locations
def _children(value: Any) -> Iterator[tuple[Any, Any]]:
    """Keys and items of a dict, list or plain tuple (not a named tuple)."""
    if isinstance(value, dict):
        yield from value.items()
    elif type(value) in (list, tuple):
        yield from enumerate(value)


def _tensors(args: tuple, kwargs: dict) -> list[tuple[Location, torch.Tensor]]:
    """Every tensor in the arguments, also inside dicts, lists and tuples, with its location."""
    found: list[tuple[Location, torch.Tensor]] = []

    def walk(location: Location, value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            found.append((location, value))
        elif depth < 4:
            for key, item in _children(value):
                walk(location + (key,), item, depth + 1)

    for i, a in enumerate(args):
        walk(("arg", i), a, 0)
    for k, a in kwargs.items():
        walk(("kw", k), a, 0)
    return found


def _get(args: tuple, kwargs: dict, location: Location) -> Any:
    kind, where, *keys = location
    value: Any = args[where] if kind == "arg" else kwargs.get(where)
    for key in keys:
        value = value[key]
    return value


def _replaced(container: Any, keys: list, value: Any) -> Any:
    if not keys:
        return value
    key, rest = keys[0], keys[1:]
    if isinstance(container, dict):
        new = dict(container)
        new[key] = _replaced(container[key], rest, value)
        return new
    items = list(container)
    items[key] = _replaced(items[key], rest, value)
    return type(container)(items)


def _set(args: list, kwargs: dict, location: Location, value: Any) -> None:
    kind, where, *keys = location
    if kind == "arg":
        args[where] = _replaced(args[where], keys, value)
    else:
        kwargs[where] = _replaced(kwargs.get(where), keys, value)


def _label(location: Location, names: Mapping[Location, str]) -> str:
    kind, where, *keys = location
    base = names.get((kind, where), f"args[{where}]" if kind == "arg" else where)
    return base + "".join(f"[{key!r}]" for key in keys)


# ----------------------------------------------------------------------------- views
def _storage_positions(t: torch.Tensor) -> torch.Tensor:
    """Position in its storage of every element of ``t`` (in ``t``'s own order)."""
    numel_storage = t.untyped_storage().nbytes() // t.element_size()
    return torch.arange(numel_storage, device=t.device).as_strided(t.shape, t.stride(), t.storage_offset())


def _view_index(value: torch.Tensor, arg: torch.Tensor) -> torch.Tensor | None:
    """For ``value`` a view of ``arg``'s storage: the flat index in ``arg`` of each
    element of ``value`` (``value.flatten() == arg.flatten()[index]``), else None."""
    if value.dtype != arg.dtype or value.device != arg.device or arg.numel() == 0:
        return None
    if value.untyped_storage().data_ptr() != arg.untyped_storage().data_ptr():
        return None
    arg_pos = _storage_positions(arg).reshape(-1)
    value_pos = _storage_positions(value).reshape(-1)
    if arg_pos.unique().numel() != arg_pos.numel():
        return None  # an expanded argument: its elements are not distinct
    lookup = torch.full((int(arg_pos.max()) + 1,), -1, dtype=torch.long, device=arg.device)
    lookup[arg_pos] = torch.arange(arg_pos.numel(), device=arg.device)
    if int(value_pos.max()) >= lookup.numel():
        return None
    index = lookup[value_pos]
    if bool((index < 0).any()):
        return None
    return index


# ----------------------------------------------------------------------------- selections
#: Largest argument the selection probe numbers exactly in each floating dtype.
_EXACT_INTEGERS = {torch.float64: 2**53, torch.float32: 2**24, torch.float16: 2**11, torch.bfloat16: 2**8}


def _numbering(arg: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A tensor like ``arg`` whose elements are a random numbering of its positions,
    and the inverse (number -> flat position); None when the dtype cannot hold it."""
    n = arg.numel()
    if n == 0 or n > _EXACT_INTEGERS.get(arg.dtype, 2**62 if arg.dtype in (torch.int64, torch.int32) else 0):
        return None
    if arg.dtype == torch.int32 and n > 2**31 - 1:
        return None
    numbers = torch.randperm(n, generator=generator)
    inverse = torch.empty_like(numbers)
    inverse[numbers] = torch.arange(n)
    return numbers.to(device=arg.device, dtype=arg.dtype).reshape(arg.shape), inverse.to(arg.device)


def _selection_index(
    model: Callable,
    args: tuple,
    kwargs: dict,
    location: Location,
    site: str,
    observed: torch.Tensor,
    replay: Trace | None,
) -> torch.Tensor | None:
    """Flat index into the argument at ``location`` of each element the model
    observes at ``site``, found by running the model with that argument numbered;
    None unless the numbering comes through as a pure selection of the argument
    that reproduces ``observed``."""
    arg = _get(args, kwargs, location)
    numbered = _numbering(arg, torch.Generator().manual_seed(arg.numel()))
    if numbered is None:
        return None
    numbers, inverse = numbered
    new_args, new_kwargs = list(args), dict(kwargs)
    _set(new_args, new_kwargs, location, numbers)
    fn = model if replay is None else poutine.replay(model, trace=replay)
    rng = get_rng_state()
    try:
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(fn).get_trace(*new_args, **new_kwargs)
    except Exception:  # the model cannot run on numbers in place of its data: not a selection
        return None
    finally:
        set_rng_state(rng)
    node = trace.nodes.get(site)
    if node is None or node["type"] != "sample" or not node["is_observed"]:
        return None
    probe = node["value"]
    if not isinstance(probe, torch.Tensor) or probe.shape != observed.shape or probe.numel() == 0:
        return None
    flat = probe.detach().reshape(-1)
    if flat.is_floating_point():
        if not bool((flat == flat.round()).all()):
            return None
    elif flat.dtype == torch.bool:
        return None
    flat = flat.long()
    if bool((flat < 0).any()) or bool((flat >= arg.numel()).any()):
        return None
    index = inverse[flat]
    if index.unique().numel() != index.numel():
        return None
    if not torch.equal(arg.reshape(-1)[index].to(observed.dtype), observed.reshape(-1)):
        return None
    return index


# ----------------------------------------------------------------------------- routes
class _Route:
    """Where one observed site's generated values go: the whole argument at
    ``location`` (``index is None``), or the elements ``index`` of its flat copy."""

    def __init__(self, location: Location, index: torch.Tensor | None = None):
        self.location = location
        self.index = index


def _resolve(
    site: str,
    sig: inspect.Signature | None,
    args: tuple,
    kwargs: dict,
    encoder_value: torch.Tensor | None,
    explicit: Mapping[str, str] | None,
    probe: Callable[[Location], torch.Tensor | None] | None,
    generated: torch.Tensor,
) -> _Route:
    locations, accepts_kwargs = _parameter_locations(sig, args, kwargs)
    if explicit is not None and site in explicit:
        target = explicit[site]
        if target in locations:
            return _Route(locations[target])
        if accepts_kwargs:
            return _Route(("kw", target))
        raise GuideInputsError(
            f"guide_inputs maps observed site '{site}' to guide parameter "
            f"'{target}', but the guide {_describe(sig)} has no such parameter. "
            f"Use one of: {', '.join(locations) or '(none)'}."
        )
    if site in locations:
        return _Route(locations[site])
    names = {where: name for name, where in locations.items()}
    tensors = _tensors(args, kwargs)
    if encoder_value is not None:
        same = [loc for loc, t in tensors if t is encoder_value]
        if len(same) == 1:
            return _Route(same[0])
        if len(same) > 1:
            raise GuideInputsError(
                f"Trace_MIM: the data of observed site '{site}' is passed to the guide "
                f"{_describe(sig)} in {len(same)} places "
                f"({', '.join(_label(loc, names) for loc in same)}); cannot tell which one to "
                f"replace with generated data. Pass "
                f"guide_inputs={{{site!r}: {_label(same[0], names)!r}}} to Trace_MIM."
            )
        views = [(loc, index) for loc, t in tensors if (index := _view_index(encoder_value, t)) is not None]
        if views:
            # an argument and a view of it may both be passed: the largest one holds the others
            largest = max(_get(args, kwargs, loc).numel() for loc, _ in views)
            views = [(loc, index) for loc, index in views if _get(args, kwargs, loc).numel() == largest]
            if len(views) == 1:
                return _Route(*views[0])
        if probe is not None:
            if torch.jit.is_tracing():
                # which elements a selection picks can depend on the data (a mask),
                # which a compiled graph would freeze at the first batch
                raise GuideInputsError(
                    f"Trace_MIM: observed site '{site}' is a selection of a guide argument "
                    f"(e.g. ys[xs == -1]), which a compiled loss cannot route; use Trace_MIM "
                    f"(not compiled), or pass a callable guide_inputs(generated, args, kwargs)."
                )
            selections = []
            for loc, t in tensors:
                if t.numel() >= encoder_value.numel() and (index := probe(loc)) is not None:
                    selections.append((loc, index))
            if len(selections) == 1:
                return _Route(*selections[0])
    raise GuideInputsError(_unresolved_message(site, sig, tensors, names, encoder_value, generated))


def _unresolved_message(
    site: str,
    sig: inspect.Signature | None,
    tensors: list[tuple[Location, torch.Tensor]],
    names: Mapping[Location, str],
    encoder_value: torch.Tensor | None,
    generated: torch.Tensor,
) -> str:
    """The error when no rule decides, with the ``guide_inputs`` value to pass."""
    observed = encoder_value if encoder_value is not None else generated
    named = [(loc, t) for loc, t in tensors if len(loc) == 2 and loc in names]
    fitting = [(loc, t) for loc, t in named if t.numel() == observed.numel()]
    head = (
        f"Trace_MIM(symmetric=True) must hand the data generated at observed site '{site}' "
        f"(shape {tuple(observed.shape)}) to the guide {_describe(sig)}, but no guide argument "
        f"is named '{site}', is the observed tensor, has it as a view, or is one the model "
        f"selects it from."
    )
    if len(fitting) == 1:
        ((loc, t),) = fitting
        return (
            f"{head} Guide argument '{names[loc]}' (shape {tuple(t.shape)}) has as many elements: "
            f"if it carries that data, pass guide_inputs={{{site!r}: {names[loc]!r}}} to Trace_MIM "
            f"(generated values are reshaped to its shape)."
        )
    target = _label(fitting[0][0], names) if fitting else (_label(named[0][0], names) if named else "x")
    return (
        f"{head} Pass a callable that builds the guide's arguments from the generated data, "
        f"e.g. guide_inputs=lambda generated, args, kwargs: "
        f"((generated[{site!r}].reshape(<shape of {target}>), *args[1:]), kwargs), adapted to "
        f"where the guide reads that data."
    )


def _fit_to(
    original: Any,
    generated: torch.Tensor,
    encoder_value: torch.Tensor | None,
    site: Mapping[str, Any],
    subsample_indices: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """Generated data in the place of the whole argument ``original``: as is when
    the shapes agree, reshaped when the element counts agree, else scattered into
    the full data set at the subsample indices."""
    if not isinstance(original, torch.Tensor) or original.dim() == 0:
        return generated
    if generated.shape[generated.dim() - original.dim() :] == original.shape:
        return generated  # same data shape (possibly with particle dims on the left)
    reference = encoder_value if encoder_value is not None else generated
    particle_dims = generated.dim() - reference.dim()
    if particle_dims >= 0 and generated.shape[particle_dims:] == reference.shape:
        if reference.numel() == original.numel():
            return generated.reshape(generated.shape[:particle_dims] + original.shape)
    return _scatter_into_full(original, generated, site, subsample_indices)


def _scatter_into_full(
    original: Any, generated: torch.Tensor, site: Mapping[str, Any], subsample_indices: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Place a generated minibatch into a copy of the full data tensor when the
    guide receives the full data set and subsamples it itself."""
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
        f"{tuple(original.shape)}: neither the element counts agree nor does a subsampled "
        f"plate explain the difference. Pass a callable guide_inputs(generated, args, kwargs) "
        f"-> (args, kwargs)."
    )


def substitute_generated(
    guide: Callable,
    args: tuple,
    kwargs: dict,
    generated_sites: Mapping[str, Mapping[str, Any]],
    encoder_values: Mapping[str, torch.Tensor],
    subsample_indices: Mapping[str, torch.Tensor],
    guide_inputs: GuideInputs = None,
    model: Callable | None = None,
    subsample_trace: Trace | None = None,
) -> tuple[tuple, dict]:
    """Return the guide's ``(args, kwargs)`` with each observed site's data
    replaced by the value generated at that site on the decoder side.

    :param guide: the user's guide (un-wrapped, for its signature).
    :param generated_sites: decoder-side trace sites of the observed sites
        (run under ``poutine.uncondition``, which keeps the observed data in
        ``site["infer"]["obs"]``).
    :param encoder_values: observed values of the same sites on the encoder
        side, used where a site does not keep its observed data.
    :param subsample_indices: subsample indices of the decoder-side plates.
    :param guide_inputs: an explicit mapping or hook, see the module docstring.
    :param model: the model, for finding data the model selects by indexing
        (rule 5 of the module docstring); without it that rule is skipped.
    :param subsample_trace: the decoder side's subsample sites, replayed when
        the model is run to find a selection.
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
    written: dict[Location, torch.Tensor] = {}
    writers: dict[Location, list[str]] = {}
    whole: dict[Location, bool] = {}
    for name, site in generated_sites.items():
        observed = site["infer"].get("obs", encoder_values.get(name))
        probe = None
        if model is not None and isinstance(observed, torch.Tensor):

            def probe(location: Location, name: str = name, observed: torch.Tensor = observed):
                return _selection_index(model, args, kwargs, location, name, observed, subsample_trace)

        route = _resolve(name, sig, args, kwargs, observed, guide_inputs, probe, site["value"])
        earlier = writers.setdefault(route.location, [])
        if earlier and (route.index is None or whole.get(route.location)):
            names = {where: p for p, where in _parameter_locations(sig, args, kwargs)[0].items()}
            raise GuideInputsError(
                f"Trace_MIM: observed sites {earlier + [name]} would all be handed to guide argument "
                f"'{_label(route.location, names)}' in place of its whole value; the guide can read "
                f"only one of them there. Pass a callable guide_inputs(generated, args, kwargs) -> "
                f"(args, kwargs) that places each site's generated data."
            )
        earlier.append(name)
        whole[route.location] = route.index is None
        original = _get(args, kwargs, route.location)
        if route.index is None:
            value = _fit_to(original, site["value"], observed, site, subsample_indices)
        else:
            assert observed is not None  # views and selections are found from the observed tensor
            base = written.get(route.location, original)
            value = _written(base, original, site["value"], route.index, observed)
        written[route.location] = value
        _set(new_args, new_kwargs, route.location, value)
    return tuple(new_args), new_kwargs


def _written(
    base: torch.Tensor, original: torch.Tensor, generated: torch.Tensor, index: torch.Tensor, observed: torch.Tensor
) -> torch.Tensor:
    """A copy of ``base`` (an argument of ``original``'s shape, possibly with
    particle dims on the left already) with ``generated`` at flat elements
    ``index``; particle dims of ``generated`` are kept on the left."""
    particle_dims = generated.dim() - observed.dim()
    if particle_dims < 0 or generated.shape[particle_dims:] != observed.shape:
        raise GuideInputsError(
            f"Trace_MIM: generated data of shape {tuple(generated.shape)} does not extend the "
            f"observed data's shape {tuple(observed.shape)} on the left."
        )
    batch = torch.broadcast_shapes(generated.shape[:particle_dims], base.shape[: base.dim() - original.dim()])
    flat = base.detach() if base is original else base
    flat = flat.to(generated.dtype).expand(batch + original.shape).reshape(batch + (original.numel(),))
    source = generated.expand(batch + observed.shape).reshape(batch + (observed.numel(),))
    return flat.index_copy(-1, index, source).reshape(batch + original.shape)
