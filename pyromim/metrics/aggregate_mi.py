"""Mutual information of the encoding joint through the aggregate posterior.

With ``q(z) = 1/N sum_j q(z | x_j)`` the mixture of the encodings of the
dataset (the aggregate posterior), the encoder's mutual information is

    I_q(x; z) = E_{x_i} E_{z ~ q(z | x_i)} [ log q(z | x_i) - log q(z) ],

estimated with ``num_samples`` draws per datum and the exact mixture over the
``N`` data points.  Since ``q(z | x_i) <= N q(z)``, the estimate never exceeds
``log N``: an encoder that separates every datum saturates at that ceiling.

Evaluating ``q(z_m | x_j)`` for every draw ``m`` and datum ``j`` runs the
guide on a block of data with its latent sites conditioned on a block of draws
(an outer plate over the draws), so hierarchical guides are handled exactly;
the ``N x SN`` log-densities are reduced block by block with ``logsumexp``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro.poutine as poutine
import torch

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import sum_log_prob, vectorized
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout, sample_sites


@dataclass(frozen=True)
class AggregateMI:
    """Aggregate-posterior MI estimate (nats), its ``log N`` ceiling and its standard error.

    ``stderr`` is the standard error of the mean over items: the sample standard
    deviation of the per-item terms ``mean_s [log q(z_s | x_i) - log q(z_s)]``
    divided by ``sqrt(N)``. (Every term shares the same mixture ``q(z)``, so the
    items are not exactly independent; the error is the usual approximation.)
    The true mutual information is never negative: a negative estimate within a
    few standard errors of 0 is estimator noise around 0.
    """

    mi: float
    log_n_ceiling: float
    num_data: int
    num_samples: int
    stderr: float = math.nan


def _draws_first(value: torch.Tensor, event_dims: int, layout: TraceLayout) -> torch.Tensor:
    """(sample, ..., data, ..., event) -> (sample * data, ..., event), data dim removed."""
    full = layout.max_plate_nesting + 1
    batch_dims = value.dim() - event_dims
    value = value.reshape((1,) * (full - batch_dims) + tuple(value.shape))
    value = value.movedim(full + layout.data_dim, 1)
    return value.reshape(-1, *value.shape[2:])


def _as_pairs(draws: torch.Tensor, num_data: int, layout: TraceLayout) -> torch.Tensor:
    """(M, ..., event) -> (M, ..., num_data at the data dim, ..., event), a broadcast view."""
    index = layout.max_plate_nesting + 1 + layout.data_dim
    paired = draws.unsqueeze(index)
    shape = list(paired.shape)
    shape[index] = num_data
    return paired.expand(shape)


def _encode_draws(
    guide: Callable, data: Batch, num_samples: int, layout: TraceLayout, chunk: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Draws ``z ~ q(z | x_i)`` per latent site, flattened to (S*N, ...), and log q(z|x_i)."""
    draws: dict[str, list[torch.Tensor]] = {n: [] for n in layout.latent_sites}
    log_q = []
    for span in spans(batch_length(data), chunk):
        x = take(data, span)
        with torch.no_grad(), poutine.block():
            sites = sample_sites(get_trace(vectorized(guide, num_samples, layout), x))
        for name in layout.latent_sites:
            event_dims = len(sites[name]["fn"].event_shape)
            draws[name].append(_draws_first(sites[name]["value"], event_dims, layout))
        log_q.append(sum_log_prob(sites, layout.latent_sites, layout, batch_length(x)).reshape(-1))
    return {n: torch.cat(v) for n, v in draws.items()}, torch.cat(log_q)


def _log_mixture(
    guide: Callable,
    data: Batch,
    draws: dict[str, torch.Tensor],
    layout: TraceLayout,
    data_chunk: int,
    draw_chunk: int,
) -> torch.Tensor:
    """``log sum_j q(z_m | x_j)`` for every draw ``m``."""
    num_draws = next(iter(draws.values())).shape[0]
    out = []
    for rows in spans(num_draws, draw_chunk):
        acc = torch.full((rows.stop - rows.start,), -math.inf, dtype=torch.float64)
        for cols in spans(batch_length(data), data_chunk):
            x = take(data, cols)
            fixed = {n: _as_pairs(v[rows], batch_length(x), layout) for n, v in draws.items()}
            conditioned = poutine.condition(guide, data=fixed)
            with torch.no_grad(), poutine.block():
                trace = get_trace(vectorized(conditioned, rows.stop - rows.start, layout), x)
            log_q = sum_log_prob(sample_sites(trace), layout.latent_sites, layout, batch_length(x))
            acc = torch.logaddexp(acc, torch.logsumexp(log_q.double(), -1))
        out.append(acc)
    return torch.cat(out)


@torch.no_grad()
def mutual_information(
    guide: Callable,
    data: Batch,
    num_samples: int = 1,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> AggregateMI:
    """``E[log q(z|x) - log q(z)]`` with ``q(z)`` the mixture of all encodings of ``data``.

    :param guide: Pyro guide ``guide(x)`` sampling its latent sites in a plate over ``x``.
    :param data: ``(N, ...)`` data points; the mixture runs over all of them.
    :param num_samples: draws ``z ~ q(z | x)`` per datum.
    :param plate_name: name of the data plate, when it cannot be found automatically.
    :param memory_budget: bytes one vectorised block may use (work is split into blocks that fit it).
    """
    layout = inspect_layout(None, guide, data, plate_name)
    n = batch_length(data)
    pair_bytes = bytes_per_pair(layout)
    chunk, _ = block_shape(memory_budget, pair_bytes, n, num_samples)
    draws, log_q_own = _encode_draws(guide, data, num_samples, layout, chunk)
    pairs = max(1, memory_budget // pair_bytes)
    data_chunk = min(n, max(1, math.isqrt(pairs)))
    draw_chunk = max(1, pairs // data_chunk)
    log_q_mix = _log_mixture(guide, data, draws, layout, data_chunk, draw_chunk) - math.log(n)
    terms = log_q_own.double() - log_q_mix
    # the terms run chunk by chunk, each chunk (draws, items) flattened: average each item's draws
    per_item = torch.cat(
        [terms[num_samples * s.start : num_samples * s.stop].reshape(num_samples, -1).mean(0) for s in spans(n, chunk)]
    )
    stderr = per_item.std().item() / math.sqrt(n) if n > 1 else math.nan
    return AggregateMI(
        mi=terms.mean().item(), log_n_ceiling=math.log(n), num_data=n, num_samples=num_samples, stderr=stderr
    )
