"""Reconstructions decoded from the posterior mean with no observed value fed in.

The latent sites are set to their guide means ``mu(x)`` (model-only latents to
their prior means) and the model is run with every observed site replaced by
its decode ``x_hat`` given the sites before it:

* an :class:`~pyromim.distributions.AutoregressiveDistribution` is decoded
  greedily (:meth:`~pyromim.distributions.AutoregressiveDistribution.greedy`:
  each step's most probable value given the *decoded* prefix);
* any other distribution gives its ``mode``.

A program written as an ancestral loop (one site per step, each fed the value
its ``pyro.sample`` returns) therefore gets the previous *decoded* values, never
the data: ``x_hat`` depends on ``x`` only through ``mu(x)``. (A distribution
whose parameters a user computed from the observed ``x`` itself, teacher
forcing outside the library's distributions, cannot be told apart here.)

Measures of ``x_hat`` against ``x``:

* token sequences (a site whose distribution has ``lengths`` and ``eos_id``,
  e.g. :class:`~pyromim.distributions.TokenSequenceDistribution`), each
  sequence counted over the data sequence's ``n_i`` positions up to and
  including its first ``<eos>``:

  - ``token_accuracy = sum_i #{t < n_i : x_hat_it = x_it} / sum_i n_i``;
  - ``wrong_tokens = mean_i #{t < n_i : x_hat_it != x_it}`` (per sequence);
  - ``bleu``: corpus BLEU-4 (:func:`~pyromim.metrics.bleu.corpus_bleu`) of the
    decodes against the data, both cut before their first ``<eos>``;

* other discrete sites (binary or categorical images, flat vectors):
  ``element_error_rate``, the share of elements where ``x_hat != x`` (the
  pixel error rate of a binary image).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.distributions.autoregressive import AutoregressiveDistribution
from pyromim.metrics.bleu import corpus_bleu
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair, guide_sites
from pyromim.metrics.per_datum import PosteriorMeanMessenger, site_values
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout, sample_sites

logger = logging.getLogger(__name__)


def base_distribution(fn: Any) -> Any:
    """``fn`` with its wrappers (``Independent``, masked, expanded) taken off."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def is_token_sequence(fn: Any) -> bool:
    """Whether a site's distribution scores token sequences ending in ``<eos>`` (it has ``lengths`` and ``eos_id``)."""
    base = base_distribution(fn)
    return callable(getattr(base, "lengths", None)) and hasattr(base, "eos_id")


def is_autoregressive(fn: Any) -> bool:
    """Whether a site's distribution is one of the library's autoregressive distributions."""
    return isinstance(base_distribution(fn), AutoregressiveDistribution)


def point_decode(name: str, fn: Any) -> torch.Tensor:
    """The decode of one site: greedy for an autoregressive distribution, else the mode; shape ``batch + event``."""
    base = base_distribution(fn)
    if isinstance(base, AutoregressiveDistribution):
        value = base.greedy()
    else:
        try:
            value = base.mode
        except NotImplementedError as err:
            raise NotImplementedError(
                f"observed site '{name}': {type(base).__name__} has neither greedy() nor .mode, so it cannot be "
                "decoded; use an AutoregressiveDistribution or a distribution with a mode"
            ) from err
    return value.expand(fn.batch_shape + fn.event_shape)


def at_posterior_mean(model: Callable, guide: Callable, x: Batch) -> Callable:
    """``model`` with the guide's latent sites at their means for ``x`` (model-only latents at their prior means)."""
    means = poutine.Trace()
    for name, site in guide_sites(guide, x, "mean").items():
        means.add_node(name, **site)
    return PosteriorMeanMessenger()(poutine.replay(model, trace=means))


class GreedyDecodeMessenger(Messenger):
    """Replaces every observed site's value by its :func:`point_decode`, keeping the data in ``observed``.

    Later sites (an ancestral loop) then read the decoded values, not the data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.observed: dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg: Any) -> None:
        if not msg["is_observed"]:
            return
        self.observed[msg["name"]] = msg["value"]
        msg["value"] = point_decode(msg["name"], msg["fn"]).to(msg["value"].dtype)


def decode_at_posterior_mean(
    model: Callable, guide: Callable, x: Batch
) -> tuple[dict[str, dict], dict[str, torch.Tensor]]:
    """The model's sample sites with latents at the posterior mean and observed sites decoded, and the data.

    Returns ``(sites, observed)``: ``sites[name]["value"]`` is the decode of
    each observed site, ``observed[name]`` the data it replaced.
    """
    decoding = GreedyDecodeMessenger()
    with torch.no_grad(), poutine.block():
        sites = sample_sites(get_trace(decoding(at_posterior_mean(model, guide, x)), x))
    return sites, decoding.observed


@dataclass(frozen=True)
class Decoding:
    """Posterior-mean greedy reconstructions and their agreement with the data (see the module docstring).

    Token measures are NaN when no observed site holds token sequences,
    ``element_error_rate`` when no other site is discrete. ``per_datum_wrong``
    counts the wrong tokens of each datum (``0`` without token sites);
    ``decodes`` and ``data`` hold each observed site's values flattened to
    ``(N, D)``.
    """

    token_accuracy: float
    wrong_tokens: float
    bleu: float
    element_error_rate: float
    per_datum_wrong: torch.Tensor
    decodes: dict[str, torch.Tensor] = field(repr=False)
    data: dict[str, torch.Tensor] = field(repr=False)


def _sequences(values: torch.Tensor, length: int) -> torch.Tensor:
    """``(C, D)`` per-datum values as ``(C, D / L, L)`` sequences."""
    return values.reshape(values.shape[0], -1, length)


def _cut(sequence: list[int], eos_id: int) -> list[int]:
    return sequence[: sequence.index(eos_id)] if eos_id in sequence else sequence


@torch.no_grad()
def greedy_reconstruction(
    model: Callable,
    guide: Callable,
    data: Batch,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Decoding:
    """Decode every datum from its posterior mean with no observed value fed in, and score the decodes.

    :param model: Pyro model ``model(x)``; its observed sites need ``greedy()`` (autoregressive) or ``.mode``.
    :param guide: Pyro guide ``guide(x)``; its latent sites must implement ``.mean``.
    :param data: ``(N, ...)`` data points (or a batch of the model's arguments).
    """
    layout = inspect_layout(model, guide, data, plate_name)
    chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), 1)
    decodes: dict[str, list[torch.Tensor]] = {name: [] for name in layout.observed_sites}
    truths: dict[str, list[torch.Tensor]] = {name: [] for name in layout.observed_sites}
    kinds: dict[str, Any] = {}
    for span in spans(batch_length(data), chunk):
        sites, observed = decode_at_posterior_mean(model, guide, take(data, span))
        for name in layout.observed_sites:
            site = sites[name]
            kinds[name] = base_distribution(site["fn"])
            decodes[name].append(site_values(name, site, layout)[0])
            truths[name].append(site_values(name, {**site, "value": observed[name]}, layout)[0])
    decoded = {name: torch.cat(parts) for name, parts in decodes.items()}
    truth = {name: torch.cat(parts) for name, parts in truths.items()}
    return _score(layout, kinds, decoded, truth)


def _score(
    layout: TraceLayout, kinds: dict[str, Any], decoded: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]
) -> Decoding:
    num_data = next(iter(truth.values())).shape[0]
    per_datum_wrong = torch.zeros(num_data, dtype=torch.long)
    correct = positions = sequences = 0
    hypotheses: list[list[int]] = []
    references: list[list[int]] = []
    element_wrong = element_total = 0
    for name in layout.observed_sites:
        kind = kinds[name]
        if is_token_sequence(kind):
            length = int(kind.event_shape[-1])
            x, x_hat = _sequences(truth[name].long(), length), _sequences(decoded[name].long(), length)
            counted = torch.arange(length) < kind.lengths(x)[..., None]
            wrong = (counted & (x_hat != x)).sum(-1)
            per_datum_wrong += wrong.sum(-1)
            correct += int((counted & (x_hat == x)).sum())
            positions += int(counted.sum())
            sequences += int(wrong.numel())
            eos = int(kind.eos_id)
            hypotheses += [_cut(s, eos) for s in x_hat.reshape(-1, length).tolist()]
            references += [_cut(s, eos) for s in x.reshape(-1, length).tolist()]
        elif getattr(kind.support, "is_discrete", False):
            element_wrong += int((decoded[name] != truth[name]).sum())
            element_total += decoded[name].numel()
        else:
            logger.info("observed site '%s' is continuous: it has no decode error rate", name)
    return Decoding(
        token_accuracy=correct / positions if positions else math.nan,
        wrong_tokens=float(per_datum_wrong.sum()) / sequences if sequences else math.nan,
        bleu=corpus_bleu(hypotheses, references) if sequences else math.nan,
        element_error_rate=element_wrong / element_total if element_total else math.nan,
        per_datum_wrong=per_datum_wrong,
        decodes=decoded,
        data=truth,
    )
