"""Encodings of a dataset by a guide: posterior means or posterior draws per datum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pyro.poutine as poutine
import torch

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, FOOTPRINT_FACTOR, block_shape, spans
from pyromim.metrics.per_datum import PosteriorMeanMessenger, site_values
from pyromim.metrics.trace_layout import TraceLayout, sample_sites


def bytes_per_pair(layout: TraceLayout) -> int:
    """Estimated working-set bytes of one (sample, datum) pair (see :mod:`.chunking`)."""
    return (layout.pair_numel * FOOTPRINT_FACTOR + layout.network_numel) * torch.finfo(layout.dtype).bits // 8


def guide_sites(guide: Callable, x: Batch, how: Literal["mean", "sample"] = "sample") -> dict[str, dict]:
    """Sample sites of one guide trace; with ``how="mean"`` every latent is set to its mean."""
    if how not in ("mean", "sample"):
        raise ValueError(f"how must be 'mean' or 'sample', got {how!r}")
    fn = PosteriorMeanMessenger()(guide) if how == "mean" else guide
    with torch.no_grad(), poutine.block():
        return sample_sites(get_trace(fn, x))


@torch.no_grad()
def encode(
    guide: Callable,
    data: Batch,
    layout: TraceLayout,
    how: Literal["mean", "sample"] = "mean",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """``(N, D)`` encodings: the latent sites of each datum, flattened and concatenated.

    ``how="mean"`` takes each latent site's ``fn.mean`` (parents at their
    means), ``how="sample"`` one draw ``z ~ q(z | x)``.  Columns follow
    ``layout.latent_sites``.
    """
    chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), 1)
    blocks = []
    for span in spans(batch_length(data), chunk):
        sites = guide_sites(guide, take(data, span), how)
        blocks.append(torch.cat([site_values(n, sites[n], layout)[0] for n in layout.latent_sites], -1))
    return torch.cat(blocks, 0)
