"""Finding the data plate and the site layout of a model/guide pair.

Per-datum metrics need to know which batch dimension of every site indexes the
data points.  A VAE-style pair ``model(x)`` / ``guide(x)`` declares it with a
plate over the leading dimension of ``x``; this module runs the pair once and
finds that plate: the plate whose size follows the batch size (checked at two
batch sizes when one is ambiguous), or the plate named by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.util import prune_subsample_sites

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.infer.sites import base_distribution

#: Name of the outer plate that vectorises importance samples.
SAMPLE_PLATE = "_pyromim_metrics_samples"


@dataclass(frozen=True)
class TraceLayout:
    """What the metrics need to know about a model/guide pair.

    ``data_dim`` is the (negative) batch dimension of the data plate;
    ``max_plate_nesting`` the number of batch dimensions the pair uses, so the
    sample plate sits at ``-(max_plate_nesting + 1)``.  ``latent_sites`` are
    the guide's sample sites, ``observed_sites`` the model's observed sites,
    ``prior_sites`` the model's latent sites the guide does not sample (they
    are drawn from the prior, which is then their own proposal).
    ``observed_numel`` counts observed elements per datum (the "dimensions" of
    bits per dimension); ``pair_numel`` counts the elements of all sample-site
    values per (sample, datum) pair, the unit of the memory budget.
    """

    plate_name: str
    data_dim: int
    max_plate_nesting: int
    latent_sites: tuple[str, ...]
    observed_sites: tuple[str, ...]
    prior_sites: tuple[str, ...]
    observed_numel: int
    pair_numel: int
    dtype: torch.dtype
    #: elements the library's autoregressive networks produce per datum in one scoring pass
    #: (:meth:`~pyromim.distributions.AutoregressiveDistribution.network_numel`), beyond ``pair_numel``
    network_numel: int = 0

    @property
    def sample_dim(self) -> int:
        return -(self.max_plate_nesting + 1)


def sample_sites(trace: poutine.Trace) -> dict[str, Any]:
    trace = prune_subsample_sites(trace)
    return {name: site for name, site in trace.nodes.items() if site["type"] == "sample"}


def run_pair(model: Callable | None, guide: Callable, x: Batch) -> tuple[dict[str, dict], dict[str, dict]]:
    """Trace ``guide(x)`` and ``model(x)`` replayed on it; return their sample sites.

    With ``model=None`` only the guide runs and the model's sites are empty.
    """
    with torch.no_grad(), poutine.block():
        guide_trace = get_trace(guide, x)
        if model is None:
            return sample_sites(guide_trace), {}
        model_trace = get_trace(poutine.replay(model, trace=guide_trace), x)
    return sample_sites(guide_trace), sample_sites(model_trace)


def _plates(sites: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """``{plate name: (dim, size)}`` of every vectorised plate around the sites."""
    found: dict[str, tuple[int, int]] = {}
    for site in sites.values():
        for frame in site["cond_indep_stack"]:
            if frame.vectorized:
                found[frame.name] = (frame.dim, int(frame.size))
    return found


def _batch_tracking(model: Callable | None, guide: Callable, x: Batch) -> tuple[set[str], dict[str, tuple[int, int]]]:
    guide_sites, model_sites = run_pair(model, guide, x)
    plates = {**_plates(guide_sites), **_plates(model_sites)}
    return {name for name, (_, size) in plates.items() if size == batch_length(x)}, plates


def _describe(plates: dict[str, tuple[int, int]]) -> str:
    if not plates:
        return "no vectorised plates"
    return ", ".join(f"'{n}' (dim {d}, size {s})" for n, (d, s) in sorted(plates.items()))


def find_data_plate(
    model: Callable | None,
    guide: Callable,
    data: Batch,
    plate_name: str | None = None,
    probe_size: int = 64,
) -> str:
    """Name of the plate over the leading dimension of ``data``.

    Without ``plate_name`` the pair is run on the first ``probe_size`` points;
    the data plate is the one plate whose size equals that batch size.  If
    several do, the pair is run again on one point fewer and only plates whose
    size followed the batch size are kept.  Raises ``ValueError`` naming the
    plates found when none or more than one remain.
    """
    n = min(batch_length(data), probe_size)
    candidates, plates = _batch_tracking(model, guide, take(data, slice(n)))
    if plate_name is not None:
        if plate_name not in plates:
            raise ValueError(
                f"plate_name='{plate_name}' is not a vectorised plate of the model or guide; found {_describe(plates)}"
            )
        return plate_name
    if len(candidates) > 1 and n > 1:
        smaller, _ = _batch_tracking(model, guide, take(data, slice(n - 1)))
        candidates &= smaller
    if len(candidates) == 1:
        return candidates.pop()
    reason = "none has" if not candidates else f"{sorted(candidates)} all have"
    raise ValueError(
        f"cannot identify the data plate: {reason} the batch size {n} of the data's leading "
        f"dimension; plates found: {_describe(plates)}. Put the data in a plate sized "
        f"x.shape[0] or pass plate_name=..."
    )


def _network_numel(site: dict) -> int:
    """What an observed site's network holds per datum while scoring it: counted for the library's
    autoregressive distributions, 0 for others (their networks are outside what a trace shows)."""
    from pyromim.distributions.autoregressive import AutoregressiveDistribution

    fn = base_distribution(site["fn"])
    return fn.network_numel(site["value"]) if isinstance(fn, AutoregressiveDistribution) else 0


def _event_numel(site: dict) -> int:
    return prod(site["fn"].event_shape)


def inspect_layout(
    model: Callable | None,
    guide: Callable,
    data: Batch,
    plate_name: str | None = None,
) -> TraceLayout:
    """Run the pair once on a few points and describe its sites (see :class:`TraceLayout`).

    ``model=None`` describes the guide alone (for encoder-only metrics); the
    layout then has no observed sites.
    """
    if not isinstance(data, (torch.Tensor, tuple, list, dict)) or (isinstance(data, torch.Tensor) and data.dim() == 0):
        raise TypeError(
            "data must be a tensor whose leading dimension indexes data points, or a tuple/dict "
            f"of the model's arguments with such tensors; got {type(data).__name__} {getattr(data, 'shape', '')}"
        )
    name = find_data_plate(model, guide, data, plate_name)
    guide_sites, model_sites = run_pair(model, guide, take(data, slice(2)))
    nesting = 0
    data_dim: int | None = None
    for site in [*guide_sites.values(), *model_sites.values()]:
        nesting = max(nesting, len(site["fn"].batch_shape))
        for frame in site["cond_indep_stack"]:
            if frame.vectorized:
                nesting = max(nesting, -frame.dim)
                if frame.name == name:
                    data_dim = frame.dim
    if data_dim is None:  # find_data_plate found it among these very sites
        raise RuntimeError(f"plate {name!r} vanished between two runs of the model/guide pair")
    latent = tuple(n for n, s in guide_sites.items() if not s["is_observed"])
    if not latent:
        raise ValueError("the guide samples no latent site; metrics need q(z|x) to sample z")
    observed = tuple(n for n, s in model_sites.items() if s["is_observed"])
    if model is not None and not observed:
        raise ValueError("the model has no observed site; call pyro.sample(name, dist, obs=x) inside the data plate")
    prior = tuple(n for n, s in model_sites.items() if not s["is_observed"] and n not in guide_sites)
    # Elements per datum: values are (batch..., event); divide the batch by the 2 data points.
    observed_numel = sum(model_sites[n]["value"].numel() for n in observed) // min(2, batch_length(data))
    pair_numel = sum(
        max(_event_numel(s), s["value"].numel() // min(2, batch_length(data)))
        for s in [*guide_sites.values(), *model_sites.values()]
    )
    network_numel = sum(_network_numel(model_sites[n]) for n in observed)
    dtype = (model_sites[observed[0]] if observed else guide_sites[latent[0]])["value"].dtype
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return TraceLayout(
        plate_name=name,
        data_dim=data_dim,
        max_plate_nesting=nesting,
        latent_sites=latent,
        observed_sites=observed,
        prior_sites=prior,
        observed_numel=observed_numel,
        pair_numel=pair_numel,
        network_numel=network_numel,
        dtype=dtype,
    )
