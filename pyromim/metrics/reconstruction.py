"""Reconstruction through the posterior mean, and the expected reconstruction NLL.

* ``error``: ``mean_i || x_i - x_hat_i ||_2`` with ``x_hat_i`` the mean of the
  model's observed distribution at ``z = E_q[z | x_i]`` (the latent sites at
  their guide means; model-only latents at their prior means), or its greedy
  decode for an :class:`~pyromim.distributions.AutoregressiveDistribution`
  (which has no mean in closed form).  Several observed sites are stacked into
  one vector per datum.
* ``expected_nll``: ``-mean_i E_{z ~ q(z|x_i)} log p(x_i | z)`` in nats, the
  reconstruction term of the ELBO, from ``num_samples`` draws per datum.
* ``sampled_error``: ``mean_i || x_i - x~_i ||_2`` with one joint draw
  ``z ~ q(z | x_i)``, ``x~_i ~ p(x | z)`` (how the MIM reference code measured
  reconstruction; a wide decoder makes it much larger than ``error``).

Distributions whose mean is undefined (a categorical over token ids: torch
returns NaN; a token-sequence distribution) give a NaN error, with a warning
naming the site: score token sequences with
:func:`~pyromim.metrics.greedy_reconstruction` instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro.poutine as poutine
import torch

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.decoding import is_autoregressive, is_token_sequence, point_decode
from pyromim.metrics.encodings import bytes_per_pair, guide_sites
from pyromim.metrics.per_datum import (
    PosteriorMeanMessenger,
    importance_block,
    site_values,
    sum_log_prob,
)
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout, sample_sites

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconstruction:
    """Mean Euclidean reconstruction error (posterior mean, and sampled) and expected reconstruction NLL (nats)."""

    error: float
    expected_nll: float
    per_datum_error: torch.Tensor
    sampled_error: float = math.nan


def reconstruct(model: Callable, guide: Callable, x: Batch, layout: TraceLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, x_hat)`` as ``(C, D)`` matrices, ``x_hat`` the observed means at the posterior mean."""
    with torch.no_grad(), poutine.block():
        means = poutine.Trace()
        for name, site in guide_sites(guide, x, "mean").items():
            means.add_node(name, **site)
        decoder = PosteriorMeanMessenger()(poutine.replay(model, trace=means))
        sites = sample_sites(get_trace(decoder, x))
    observed, predicted = [], []
    for name in layout.observed_sites:
        site = sites[name]
        try:
            mean = _point_estimate(name, site["fn"])
        except NotImplementedError as err:
            raise NotImplementedError(
                f"observed site '{name}': {type(site['fn']).__name__} has no .mean, so there "
                "is no reconstruction to compare with"
            ) from err
        if not bool(torch.isfinite(mean).all()):
            logger.warning(
                "reconstruction error is NaN: observed site '%s' (%s) has no finite mean to "
                "compare x with (token ids have no meaningful Euclidean error: use greedy_reconstruction's "
                "token_accuracy / wrong_tokens / bleu)",
                name,
                type(getattr(site["fn"], "base_dist", site["fn"])).__name__,
            )
        observed.append(site_values(name, site, layout)[0])
        predicted.append(site_values(name, {**site, "value": mean}, layout)[0])
    return torch.cat(observed, -1), torch.cat(predicted, -1)


def _point_estimate(name: str, fn) -> torch.Tensor:
    """The mean of ``fn``; the greedy decode of an autoregressive distribution; NaN for token sequences."""
    if is_token_sequence(fn):
        return torch.full(fn.batch_shape + fn.event_shape, math.nan)
    if is_autoregressive(fn):
        return point_decode(name, fn)
    return fn.mean


@torch.no_grad()
def reconstruction_error(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 1,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    sampled: bool = False,
) -> Reconstruction:
    """Reconstruction error through the posterior mean and expected reconstruction NLL.

    :param model: Pyro model ``model(x)``; its observed sites must implement ``.mean``.
    :param guide: Pyro guide ``guide(x)``; its latent sites must implement ``.mean``.
    :param data: ``(N, ...)`` data points.
    :param num_samples: draws per datum for the expected NLL.
    :param sampled: also measure ``sampled_error`` (one more draw per datum; NaN otherwise).
    """
    layout = inspect_layout(model, guide, data, plate_name)
    data_chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), num_samples)
    errors, nlls, draws = [], [], []
    for span in spans(batch_length(data), data_chunk):
        x = take(data, span)
        observed, predicted = reconstruct(model, guide, x, layout)
        errors.append((observed.double() - predicted.double()).norm(dim=-1))
        _, model_sites = importance_block(model, guide, x, num_samples, layout)
        log_lik = sum_log_prob(model_sites, layout.observed_sites, layout, batch_length(x))
        nlls.append(-log_lik.double().mean(0))
        if sampled:
            draws.append((observed.double() - _drawn(model_sites, layout)[0].double()).norm(dim=-1))
    per_datum = torch.cat(errors)
    return Reconstruction(
        error=per_datum.mean().item(),
        expected_nll=torch.cat(nlls).mean().item(),
        per_datum_error=per_datum,
        sampled_error=torch.cat(draws).mean().item() if sampled else math.nan,
    )


def _drawn(model_sites: dict[str, dict], layout: TraceLayout) -> torch.Tensor:
    """``(S, C, D)`` draws ``x~ ~ p(x | z)`` of the observed sites, stacked as :func:`reconstruct` stacks ``x``."""
    parts = []
    for name in layout.observed_sites:
        site = model_sites[name]
        parts.append(site_values(name, {**site, "value": site["fn"].sample()}, layout))
    return torch.cat(parts, -1)
