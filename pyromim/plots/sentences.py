"""Sentences as a markdown table: data beside their reconstructions, and draws from the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyro.poutine as poutine
import torch

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.data.text import Vocabulary
from pyromim.metrics.decoding import decode_at_posterior_mean, is_token_sequence, point_decode
from pyromim.metrics.per_datum import site_values
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout, sample_sites


def _token_site(layout: TraceLayout, sites: dict[str, dict]) -> str:
    names = [n for n in layout.observed_sites if is_token_sequence(sites[n]["fn"])]
    if not names:
        raise ValueError(
            f"no observed site holds token sequences (sites {list(layout.observed_sites)}); "
            "a sentence table needs a TokenSequenceDistribution (or one with lengths() and eos_id)"
        )
    return names[0]


def _rows(values: torch.Tensor, length: int) -> list[list[int]]:
    return values.reshape(-1, length).tolist()


def _text(vocabulary: Vocabulary, ids: list[int]) -> str:
    words = " ".join(vocabulary.decode(ids))
    return (words or "(empty)").replace("|", "\\|")


@torch.no_grad()
def write_sentence_table(
    model: Callable,
    guide: Callable,
    data: Batch,
    vocabulary: Vocabulary,
    path: str | Path,
    *,
    num_items: int = 8,
    num_prior: int = 8,
    plate_name: str | None = None,
) -> Path:
    """Write a markdown file of sentences decoded by a sentence model; return its path.

    Two tables: the first ``num_items`` sentences of ``data`` beside their
    greedy reconstructions from the posterior mean (no observed token fed in,
    :func:`~pyromim.metrics.greedy_reconstruction`), and ``num_prior`` codes
    ``z ~ p(z)`` each with its greedy decode and one ancestral draw of
    ``p(x | z)``. A collapsed model reconstructs every sentence alike and
    decodes every prior code alike.
    """
    items = take(data, slice(num_items))
    layout = inspect_layout(model, guide, items, plate_name)
    sites, observed = decode_at_posterior_mean(model, guide, items)
    name = _token_site(layout, sites)
    length = int(sites[name]["fn"].event_shape[-1])
    truth = _rows(site_values(name, {**sites[name], "value": observed[name]}, layout)[0], length)
    decoded = _rows(site_values(name, sites[name], layout)[0], length)
    with poutine.block():
        # the observed values are drawn, not read: only the batch size counts
        repeated = take(data, torch.arange(num_prior) % batch_length(data))
        prior = sample_sites(get_trace(poutine.uncondition(model), repeated))
    site = prior[name]
    drawn = _rows(site_values(name, site, layout)[0], length)
    greedy = _rows(site_values(name, {**site, "value": point_decode(name, site["fn"])}, layout)[0], length)
    lines = ["## Reconstructions (greedy, from the posterior mean)", "", "| data | reconstruction |", "|---|---|"]
    lines += [f"| {_text(vocabulary, x)} | {_text(vocabulary, y)} |" for x, y in zip(truth, decoded, strict=True)]
    lines += ["", "## Prior draws z ~ p(z)", "", "| greedy decode | ancestral draw |", "|---|---|"]
    lines += [f"| {_text(vocabulary, g)} | {_text(vocabulary, d)} |" for g, d in zip(greedy, drawn, strict=True)]
    out = Path(path)
    out.write_text("\n".join(lines) + "\n")
    return out
