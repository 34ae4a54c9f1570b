"""How much the decoder relies on the code: ``log p(x | z)`` at the posterior mean vs at prior draws.

For each datum

    ll_mean(x)  = log p(x | z = mu(x)),            mu(x) = E_q[z | x] (the guide's mean),
    ll_prior(x) = E_{z ~ p(z)} log p(x | z)         (``S`` prior draws, standard error sd / sqrt(S)),
    gap(x)      = ll_mean(x) - ll_prior(x).

How to read it: a decoder that ignores ``z`` (posterior collapse) gives the
same likelihood at every code, so the gap is ``0`` (up to the Monte Carlo
error of ``ll_prior``) however strong the decoder; an informative code makes
``x`` much more likely at its own ``mu(x)`` than at a random code, a large
positive gap (nats per datum; divide by the tokens of a sequence for a
per-token figure). Unlike a KNN accuracy on posterior means, it does not
reward tiny means that still separate classes when the decoder ignores them.
Read it next to the active units (:func:`~pyromim.metrics.active_units`).
Model latent sites the guide does not sample are at their prior mean in
``ll_mean`` and drawn from the prior in ``ll_prior``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro.poutine as poutine
import torch

from pyromim.data.batches import Batch, batch_length, get_trace, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.decoding import at_posterior_mean
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import sum_log_prob, vectorized
from pyromim.metrics.trace_layout import inspect_layout, sample_sites


@dataclass(frozen=True)
class CodeReliance:
    """Per-datum ``log p(x | mu(x))``, ``E_{p(z)} log p(x | z)`` (nats) and the latter's standard error."""

    ll_at_mean: torch.Tensor
    ll_at_prior: torch.Tensor
    prior_standard_error: torch.Tensor
    num_samples: int

    @property
    def per_datum_gap(self) -> torch.Tensor:
        """``log p(x | mu(x)) - E_{p(z)} log p(x | z)`` per datum."""
        return self.ll_at_mean - self.ll_at_prior

    @property
    def gap(self) -> float:
        """Mean gap over the data, nats per datum: ``~0`` for a collapsed model."""
        return self.per_datum_gap.mean().item()

    @property
    def gap_standard_error(self) -> float:
        """Monte Carlo standard error of :attr:`gap`."""
        return (self.prior_standard_error.pow(2).sum().sqrt() / len(self.ll_at_mean)).item()


@torch.no_grad()
def code_reliance(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 100,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> CodeReliance:
    """``log p(x | z)`` at the posterior mean and averaged over ``num_samples`` prior draws, per datum.

    :param model: Pyro model ``model(x)`` with its observed site(s) in the data plate.
    :param guide: Pyro guide ``guide(x)``; its latent sites must implement ``.mean``.
    :param num_samples: prior draws per datum.
    """
    if num_samples < 2:
        raise ValueError(f"code_reliance: num_samples must be >= 2 (for a standard error), got {num_samples}")
    layout = inspect_layout(model, guide, data, plate_name)
    data_chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), num_samples)
    at_mean, at_prior, errors = [], [], []
    for span in spans(batch_length(data), data_chunk):
        x = take(data, span)
        n = batch_length(x)
        with poutine.block():
            mean_sites = sample_sites(get_trace(at_posterior_mean(model, guide, x), x))
            prior_sites = sample_sites(get_trace(vectorized(model, num_samples, layout), x))
        at_mean.append(sum_log_prob(mean_sites, layout.observed_sites, layout, n)[0].double())
        draws = sum_log_prob(prior_sites, layout.observed_sites, layout, n).double()
        at_prior.append(draws.mean(0))
        errors.append(draws.std(0) / math.sqrt(num_samples))
    return CodeReliance(
        ll_at_mean=torch.cat(at_mean),
        ll_at_prior=torch.cat(at_prior),
        prior_standard_error=torch.cat(errors),
        num_samples=num_samples,
    )
