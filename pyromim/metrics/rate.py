"""The rate: ``KL(q(z | x) || p(z))`` per datum.

    R(x) = E_{q(z|x)} [ log q(z | x) - log p(z) ].

* Analytic when the guide has one latent site and ``torch`` knows the KL
  between its distribution and the model's prior at that site (Normal /
  Independent Normal pairs, among others): exact, standard error ``0``.
* Otherwise Monte Carlo with ``S`` draws ``z_s ~ q(z | x)``:
  ``R ~= (1/S) sum_s [log q(z_s|x) - log p(z_s)]``, summed over every latent
  site of the guide, with standard error ``sd_s / sqrt(S)`` per datum.

Model latent sites the guide does not sample are drawn from their prior on
both sides and add nothing. The mean rate over the data is the ELBO's KL term;
it bounds the mutual information the code carries (``I_q(x; z) <= mean R``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro.distributions.util import scale_and_mask
from torch.distributions import kl_divergence

from pyromim.data.batches import Batch, batch_length, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import _aligned, importance_block, sum_log_prob
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout


@dataclass(frozen=True)
class Rate:
    """Per-datum ``KL(q(z|x) || p(z))`` (nats), its standard error, and whether it is analytic."""

    per_datum: torch.Tensor
    standard_error: torch.Tensor
    analytic: bool
    num_samples: int

    @property
    def mean(self) -> float:
        """Mean rate over the data, nats."""
        return self.per_datum.mean().item()

    @property
    def mean_standard_error(self) -> float:
        """Standard error of :attr:`mean` from the Monte Carlo draws (``0`` when analytic)."""
        return (self.standard_error.pow(2).sum().sqrt() / len(self.per_datum)).item()


def _analytic_kl(guide_site: dict, model_site: dict, layout: TraceLayout, num_data: int) -> torch.Tensor:
    """``(C,)`` ``KL(q || p)`` of one site, summed per datum."""
    kl = scale_and_mask(kl_divergence(guide_site["fn"], model_site["fn"]), 1.0, guide_site["mask"])
    kl = torch.as_tensor(kl).expand(guide_site["fn"].batch_shape)
    return _aligned(kl, 0, layout).sum(-1)[0].expand(num_data)


def _has_analytic_kl(guide_sites: dict[str, dict], model_sites: dict[str, dict], layout: TraceLayout) -> bool:
    if len(layout.latent_sites) != 1:
        return False
    name = layout.latent_sites[0]
    try:
        kl_divergence(guide_sites[name]["fn"], model_sites[name]["fn"])
    except NotImplementedError:
        return False
    return True


@torch.no_grad()
def rate(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 100,
    *,
    analytic: bool | None = None,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Rate:
    """``KL(q(z|x) || p(z))`` per datum of ``data`` (see the module docstring).

    :param num_samples: Monte Carlo draws per datum when the KL is not analytic.
    :param analytic: ``None`` (default) uses the closed form when there is one;
        ``False`` forces Monte Carlo; ``True`` raises ``ValueError`` when there is none.
    """
    if num_samples < 2:
        raise ValueError(f"rate: num_samples must be >= 2 (for a standard error), got {num_samples}")
    layout = inspect_layout(model, guide, data, plate_name)
    guide_sites, model_sites = importance_block(model, guide, take(data, slice(2)), 1, layout)
    closed_form = _has_analytic_kl(guide_sites, model_sites, layout)
    if analytic and not closed_form:
        raise ValueError(
            f"rate(analytic=True): no closed-form KL between the guide and the prior at {list(layout.latent_sites)} "
            "(it needs one latent site with a KL that torch registers); use analytic=None for Monte Carlo"
        )
    use_closed_form = closed_form and analytic is not False
    draws = 1 if use_closed_form else num_samples
    data_chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), draws)
    estimates, errors = [], []
    for span in spans(batch_length(data), data_chunk):
        x = take(data, span)
        n = batch_length(x)
        if use_closed_form:
            guide_sites, model_sites = importance_block(model, guide, x, 1, layout)
            name = layout.latent_sites[0]
            estimates.append(_analytic_kl(guide_sites[name], model_sites[name], layout, n).double())
            errors.append(torch.zeros(n, dtype=torch.double))
            continue
        guide_sites, model_sites = importance_block(model, guide, x, num_samples, layout)
        log_ratio = (
            sum_log_prob(guide_sites, layout.latent_sites, layout, n)
            - sum_log_prob(model_sites, layout.latent_sites, layout, n)
        ).double()
        estimates.append(log_ratio.mean(0))
        errors.append(log_ratio.std(0) / math.sqrt(num_samples))
    return Rate(
        per_datum=torch.cat(estimates),
        standard_error=torch.cat(errors),
        analytic=use_closed_form,
        num_samples=draws,
    )
