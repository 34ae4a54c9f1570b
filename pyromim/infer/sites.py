"""What a site of a Pyro trace is to MIM: data or latent, local or global, and its distribution.

Global latents are the model's latent sites outside the data plate, the plate
that holds every observed site (see :func:`data_plate_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pyro.poutine.runtime import Message
from pyro.poutine.trace_struct import Trace

__all__ = [
    "PARTICLE_PLATE",
    "all_sample_sites",
    "base_distribution",
    "data_plate_of",
    "infer_option",
    "is_data",
    "is_global",
    "observed_sites",
    "sample_sites",
]


#: the plate Pyro adds around every site under ``vectorize_particles``
PARTICLE_PLATE = "num_particles_vectorized"


def infer_option(site: Mapping[str, Any], key: str) -> bool:
    """A site's ``infer[key]`` flag (``False`` when the site has no ``infer`` dict)."""
    return bool((site.get("infer") or {}).get(key, False))


def _plate_names(site: Mapping[str, Any]) -> set[str]:
    return {frame.name for frame in site.get("cond_indep_stack", ()) if frame.name != PARTICLE_PLATE}


def is_global(site: Mapping[str, Any], data_plate: str | None) -> bool:
    """Whether a trace site lies outside the data plate (a global latent, a
    global factor or a guide's global auxiliary site)."""
    return data_plate is not None and data_plate not in _plate_names(site)


def is_data(site: Mapping[str, Any]) -> bool:
    """An observed site that holds data (not a factor, not ``pyro.deterministic``)."""
    return bool(
        (site["is_observed"] or infer_option(site, "was_observed"))
        and not infer_option(site, "is_auxiliary")
        and not site["infer"].get("_deterministic", False)
    )


def data_plate_of(model_trace: Trace, data_plate: str | None = None) -> str | None:
    """The name of the data plate of a model trace, or None when there is none.

    The data plate is the plate that encloses every observed site. A model
    whose observed sites share no plate describes a single datum: all its
    latents are local. When the observed sites share several plates, a
    subsampled one is the data plate; if that still leaves a choice that
    matters (latents inside some of the candidates but not others), the
    outermost (leftmost ``dim``) is, as in Pyro's usual layout of a data
    plate around feature plates; ``data_plate`` overrides all this.
    """
    latents = [site for site in sample_sites(model_trace).values() if not site["is_observed"]]
    all_plates = set().union(*(_plate_names(site) for site in model_trace.nodes.values() if site["type"] == "sample"))
    if data_plate is not None:
        if data_plate not in all_plates:
            raise ValueError(
                f"Trace_MIM(data_plate={data_plate!r}): the model has no plate of that name; "
                f"its plates are {sorted(all_plates) or '(none)'}."
            )
        return data_plate
    observed = [site for site in sample_sites(model_trace).values() if is_data(site)]
    if not observed:
        return None
    common = set.intersection(*(_plate_names(site) for site in observed))
    if len(common) > 1:
        subsampled = {
            frame.name
            for site in observed
            for frame in site["cond_indep_stack"]
            if frame.name in common and frame.full_size is not None and frame.full_size != frame.size
        }
        common = subsampled or common
    if len(common) > 1:
        splits = {frozenset(site["name"] for site in latents if plate in _plate_names(site)) for plate in common}
        dims = {
            frame.name: frame.dim for site in observed for frame in site["cond_indep_stack"] if frame.name in common
        }
        if len(splits) > 1 and any(dims[name] is None for name in common):
            raise ValueError(
                f"Trace_MIM: the observed sites share the plates {sorted(common)}, and the "
                f"model's latents lie inside some of them but not others, so which latents "
                f"are global (outside the data plate) is ambiguous. Name the plate over "
                f"data points: Trace_MIM(data_plate={sorted(common)[0]!r}) (or another of them)."
            )
        if len(splits) > 1:  # the outermost (leftmost) of them, as Pyro lays out data plates
            return min(common, key=lambda name: cast(int, dims[name]))  # every dim is set (checked above)
    return sorted(common)[0] if common else None


def sample_sites(trace: Trace | None, include_auxiliary: bool = False) -> dict[str, Message]:
    """The sample sites of ``trace`` by name (none for ``None``); auxiliary guide
    sites (``infer={"is_auxiliary": True}``) only if ``include_auxiliary``, as
    ``log q`` needs them but the model has no site for them."""
    if trace is None:
        return {}
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and (include_auxiliary or not infer_option(site, "is_auxiliary"))
    }


def all_sample_sites(trace: Trace | None):
    """Every sample site of ``trace`` as ``(name, site)`` pairs, auxiliary ones included
    (``log q`` counts them)."""
    return sample_sites(trace, include_auxiliary=True).items()


def observed_sites(trace: Trace | None) -> dict[str, Any]:
    """Observed data sites (on the decoder side: those un-conditioned to generate data)."""
    return {name: site for name, site in all_sample_sites(trace) if is_data(site)}


def base_distribution(fn: Any) -> Any:
    """``fn`` without its wrappers (``Independent``, ``MaskedDistribution``, ``ExpandedDistribution``...)."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn
