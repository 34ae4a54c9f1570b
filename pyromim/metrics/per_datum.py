"""Per-datum quantities from vectorised Pyro traces.

A block of ``S`` importance samples for ``C`` data points is one trace of the
guide (and of the model replayed on it) under an outer plate of size ``S`` at
dimension ``-(max_plate_nesting + 1)``, exactly as Pyro's
``vectorize_particles`` does.  Each site's ``log_prob`` then has the sample
plate at its left and the data plate at ``layout.data_dim``; summing every
other dimension (other plates, unplated batch dimensions) gives a ``(S, C)``
tensor of per-datum log-densities.

Log-densities are the distributions' own ``log_prob`` with the site's mask
applied and **without** its ``poutine.scale`` / subsampling scale: a metric
evaluates densities, it does not reweight a training objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from pyromim.data.batches import Batch, batch_length, get_trace
from pyromim.metrics.trace_layout import SAMPLE_PLATE, TraceLayout, sample_sites


def vectorized(fn: Callable, num_samples: int, layout: TraceLayout) -> Callable:
    """Wrap ``fn`` in the outer sample plate of size ``num_samples``."""
    return pyro.plate(SAMPLE_PLATE, num_samples, dim=layout.sample_dim)(fn)


def _aligned(tensor: torch.Tensor, event_dims: int, layout: TraceLayout) -> torch.Tensor:
    """View ``tensor`` (batch..., event...) as (sample, data, rest...) with rest flattened."""
    batch_dims = tensor.dim() - event_dims
    full = layout.max_plate_nesting + 1
    if batch_dims > full:
        raise ValueError(f"a site has {batch_dims} batch dims but the pair nests only {full - 1} plates")
    tensor = tensor.reshape((1,) * (full - batch_dims) + tuple(tensor.shape))
    data_index = full + layout.data_dim
    tensor = tensor.movedim(data_index, 1)
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1)


def _check_in_data_plate(name: str, site: dict, layout: TraceLayout) -> None:
    if not any(f.name == layout.plate_name for f in site["cond_indep_stack"]):
        raise ValueError(
            f"site '{name}' is outside the data plate '{layout.plate_name}'; per-datum metrics "
            "need every latent and observed site inside the plate over the data points"
        )


def site_log_prob(name: str, site: dict, layout: TraceLayout, num_data: int) -> torch.Tensor:
    """``(S, C)`` per-datum log-density of one site (mask applied, no scale)."""
    _check_in_data_plate(name, site, layout)
    log_p = scale_and_mask(site["fn"].log_prob(site["value"]), 1.0, site["mask"])
    log_p = torch.as_tensor(log_p)
    if log_p.dim() < len(site["fn"].batch_shape):
        log_p = log_p.expand(site["fn"].batch_shape)
    per_datum = _aligned(log_p, 0, layout).sum(-1)
    return per_datum.expand(per_datum.shape[0], num_data)


def site_values(name: str, site: dict, layout: TraceLayout) -> torch.Tensor:
    """``(S, C, D)`` values of one site, every non-sample non-data dim flattened into ``D``."""
    _check_in_data_plate(name, site, layout)
    value = site["value"]
    shape = site["fn"].batch_shape + site["fn"].event_shape
    if value.shape != shape:
        value = value.expand(torch.broadcast_shapes(value.shape, shape))
    return _aligned(value, len(site["fn"].event_shape), layout)


def importance_block(
    model: Callable, guide: Callable, x: Batch, num_samples: int, layout: TraceLayout
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Sample sites of one vectorised guide trace and the model replayed on it."""
    guide_v = vectorized(guide, num_samples, layout)
    model_v = vectorized(model, num_samples, layout)
    with torch.no_grad(), poutine.block():
        guide_trace = get_trace(guide_v, x)
        model_trace = get_trace(poutine.replay(model_v, trace=guide_trace), x)
    return sample_sites(guide_trace), sample_sites(model_trace)


def sum_log_prob(sites: dict[str, dict], names: tuple[str, ...], layout: TraceLayout, num_data: int) -> torch.Tensor:
    """Sum of :func:`site_log_prob` over the named sites, shape ``(S, C)``."""
    return cast(torch.Tensor, sum(site_log_prob(n, sites[n], layout, num_data) for n in names))


def log_weights(model: Callable, guide: Callable, x: Batch, num_samples: int, layout: TraceLayout) -> torch.Tensor:
    """``(S, C)`` importance log-weights ``log p(x, z) - log q(z | x)``, ``z ~ q(z | x)``.

    Model latent sites absent from the guide are drawn from their prior, which
    is then their own proposal, so their densities cancel and are left out.
    """
    guide_sites, model_sites = importance_block(model, guide, x, num_samples, layout)
    n = batch_length(x)
    log_p = sum_log_prob(model_sites, layout.observed_sites + layout.latent_sites, layout, n)
    log_q = sum_log_prob(guide_sites, layout.latent_sites, layout, n)
    return log_p - log_q


def defensive_log_weights(
    model: Callable,
    guide: Callable,
    x: Batch,
    num_guide: int,
    num_prior: int,
    layout: TraceLayout,
    share: float | None = None,
) -> torch.Tensor:
    """``(num_guide + num_prior, C)`` log-weights of a defensive mixture proposal.

    ``num_guide`` draws from the guide and ``num_prior`` from the model's prior over the
    latent sites, each weighted by the mixture they were drawn from (the balance
    heuristic of multiple importance sampling)::

        log w = log p(x, z) - log( a q(z | x) + (1 - a) p(z) ),   a = num_guide / (num_guide + num_prior),

    whose mean over all the draws is an unbiased estimate of ``p(x)`` when ``a`` is the
    guide's share of all the draws (``share``, for draws made in several blocks;
    default: this block's). Where the guide is
    sharp, or misses part of the posterior, the prior's draws bound the weights by
    ``p(x | z) / (1 - a)``, so their tail stays light. Model latent sites absent from the
    guide are drawn from their prior by both parts and cancel, as in :func:`log_weights`.
    """
    n = batch_length(x)

    def densities(model_sites: dict, guide_sites: dict) -> tuple[torch.Tensor, ...]:
        """``log p(x, z)``, ``log q(z | x)`` and ``log p(z)`` of each draw, ``(S, C)`` each."""
        latents = layout.latent_sites
        return (
            sum_log_prob(model_sites, layout.observed_sites + latents, layout, n),
            sum_log_prob(guide_sites, latents, layout, n),
            sum_log_prob(model_sites, latents, layout, n),
        )

    parts = []
    if num_guide:
        guide_sites, model_sites = importance_block(model, guide, x, num_guide, layout)
        parts.append(densities(model_sites, guide_sites))
    if num_prior:
        with torch.no_grad(), poutine.block():
            model_trace = get_trace(vectorized(model, num_prior, layout), x)  # latents from the prior
            guide_trace = get_trace(poutine.replay(vectorized(guide, num_prior, layout), trace=model_trace), x)
        parts.append(densities(sample_sites(model_trace), sample_sites(guide_trace)))
    share = num_guide / (num_guide + num_prior) if share is None else share
    log_w = []
    for log_joint, log_q, log_prior in parts:
        terms = [t for t in ((share, log_q), (1.0 - share, log_prior)) if t[0] > 0]
        log_mixture = torch.logsumexp(torch.stack([math.log(a) + t for a, t in terms]), 0)
        log_w.append(log_joint - log_mixture)
    return torch.cat(log_w, 0)


class PosteriorMeanMessenger(Messenger):
    """Sets every latent sample site to the mean of its distribution.

    Downstream sites of a hierarchical guide then see their parents' means.
    Requires each latent site's distribution to implement ``.mean``.
    """

    def _pyro_sample(self, msg: Any) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(msg):
            return
        try:
            msg["value"] = msg["fn"].mean
        except NotImplementedError as err:
            raise NotImplementedError(
                f"site '{msg['name']}': {type(msg['fn']).__name__} has no .mean; posterior-mean "
                "metrics need latent sites with a Normal-like distribution"
            ) from err
        msg["done"] = True
