"""Importance-sampled marginal log-likelihood with PSIS diagnostics.

For each datum ``x`` the guide is the proposal:

    log p(x) ~= log (1/S) sum_s w_s,   w_s = p(x, z_s) / q(z_s | x),   z_s ~ q(z | x),

computed with ``logsumexp`` over log-weights.  The estimate is consistent and
unbiased for ``p(x)`` (not for ``log p(x)``, which it underestimates by about
``var(w) / (2 S E[w]^2)``).  Its delta-method standard error is

    se = sqrt( sum_s wn_s^2 - 1/S ),   wn = w / sum(w)   (= sqrt(1/ESS - 1/S)).

The tail of the weights is checked with Pareto-smoothed importance sampling
(Vehtari et al. 2024, via :func:`arviz.psislw`): a fitted shape ``k > 0.7``
means the variance of the weights is effectively infinite and the estimate is
unreliable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pyromim.data.batches import Batch, batch_length, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import defensive_log_weights, log_weights
from pyromim.metrics.refit import refit_proposal
from pyromim.metrics.trace_layout import inspect_layout

#: Pareto shape above which importance weights are unreliable (Vehtari et al.).
KHAT_THRESHOLD = 0.7
#: The metrics of :func:`~pyromim.metrics.evaluate` that are an NLL (see :func:`nll_unreliable`).
NLL_KEYS = ("nll", "nll_bits_per_dim", "nll_per_token", "perplexity")
#: An NLL is reported as unreliable when more than this share of its items has ``k > KHAT_THRESHOLD``.
UNRELIABLE_FRACTION = 0.3


def nll_unreliable(khat_bad_fraction: float | None) -> bool:
    """Whether an NLL whose ``psis_khat_bad_fraction`` is this value is no valid estimate (only a bound):
    more than :data:`UNRELIABLE_FRACTION` of its items have a Pareto ``k`` above :data:`KHAT_THRESHOLD`."""
    return (
        khat_bad_fraction is not None and math.isfinite(khat_bad_fraction) and khat_bad_fraction > UNRELIABLE_FRACTION
    )


@dataclass(frozen=True)
class LogLikelihood:
    """Per-datum ``log p(x)`` estimates (nats) with their diagnostics."""

    per_datum: torch.Tensor
    standard_error: torch.Tensor
    pareto_k: np.ndarray
    num_samples: int
    num_dims: int
    khat_threshold: float = KHAT_THRESHOLD

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood over the data, nats."""
        return -self.per_datum.mean().item()

    @property
    def nll_bits_per_dim(self) -> float:
        """``nll / (D log 2)`` with ``D`` the observed elements per datum."""
        return self.nll / (self.num_dims * math.log(2))

    @property
    def khat_bad_fraction(self) -> float:
        """Fraction of data whose Pareto shape ``k`` exceeds the threshold."""
        return float(np.mean(self.pareto_k > self.khat_threshold))


def pareto_k(log_w: np.ndarray) -> np.ndarray:
    """PSIS Pareto shape per row of ``log_w`` (``(C, S)``), via :func:`arviz.psislw`.

    Rows whose weights are constant to working precision (spread below
    ``sqrt(eps) * max(1, |log w|)``) have no tail to fit (ArviZ returns
    ``inf``); such weights are bounded, the ideal case, and get ``k = -inf``.
    """
    from pyromim.metrics.arviz_export import load_arviz

    _, k = load_arviz().psislw(log_w)
    k = np.asarray(k, dtype=float)
    spread = log_w.max(-1) - log_w.min(-1)
    tol = math.sqrt(np.finfo(np.float32).eps) * np.maximum(1.0, np.abs(log_w).max(-1))
    return np.where(spread <= tol, -np.inf, k)


@torch.no_grad()
def _prior_counts(num_samples: int, sizes: list[int], defensive: float) -> list[int]:
    """How many of each block's draws come from the prior: a share ``defensive`` of all the
    draws (at least one, and at least one from the guide), spread over the blocks."""
    total = min(num_samples - 1, max(1, round(defensive * num_samples))) if defensive > 0 else 0
    counts, done, start = [], 0, 0
    for size in sizes:
        start += size
        upto = round(total * start / num_samples)
        counts.append(upto - done)
        done = upto
    return counts


def log_likelihood(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 1000,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    khat_threshold: float = KHAT_THRESHOLD,
    defensive: float = 0.0,
    refit_steps: int = 0,
) -> LogLikelihood:
    """Importance-sampled ``log p(x)`` per datum of ``data``, guide as proposal.

    :param model: Pyro model ``model(x)`` with observed site(s) in a plate over ``x``'s
        leading dimension.
    :param guide: Pyro guide ``guide(x)`` sampling every latent site inside that plate.
    :param data: tensor ``(N, ...)`` of data points.
    :param num_samples: importance samples per datum (all drawn in vectorised blocks).
    :param plate_name: name of the data plate, when it cannot be found automatically.
    :param memory_budget: bytes one vectorised block may use (work is split into blocks that fit it).
    :param khat_threshold: Pareto ``k`` above which a datum counts as unreliable.
    :param defensive: the share of the samples drawn from the model's prior instead of
        the guide, a defensive mixture proposal (see
        :func:`pyromim.metrics.per_datum.defensive_log_weights`); for a sharp encoder
        (A-MIM, MIM) whose guide alone gives heavy-tailed weights. ``0`` (default): the
        guide alone.
    :param refit_steps: if > 0, the proposal is not the guide but, per datum, a Gaussian
        over the guide's latent sites fitted to that datum's posterior with this many
        Adam steps on its ELBO, started at the guide (see
        :func:`pyromim.metrics.refit.refit_proposal`); for a sharp encoder (A-MIM, MIM)
        whose weights are heavy-tailed. Costs about ``refit_steps * 8`` model passes per
        datum beside the ``num_samples`` of the estimate.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0.0 <= defensive < 1.0:
        raise ValueError(f"defensive must lie in [0, 1) (the share of prior draws), got {defensive}")
    if refit_steps < 0:
        raise ValueError(f"refit_steps must be >= 0 (0: the guide is the proposal), got {refit_steps}")
    layout = inspect_layout(model, guide, data, plate_name)
    data_chunk, sample_chunk = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), num_samples)
    log_ws = []
    for span in spans(batch_length(data), data_chunk):
        x = take(data, span)
        proposal = refit_proposal(model, guide, x, layout, refit_steps) if refit_steps else guide
        sizes = [s.stop - s.start for s in spans(num_samples, sample_chunk)]
        priors = _prior_counts(num_samples, sizes, defensive)
        share = 1.0 - sum(priors) / num_samples
        blocks = [
            defensive_log_weights(model, proposal, x, size - prior, prior, layout, share)
            if share < 1.0
            else log_weights(model, proposal, x, size, layout)
            for size, prior in zip(sizes, priors)
        ]
        log_ws.append(torch.cat(blocks, 0).T)
    return from_log_weights(log_ws, layout.observed_numel, khat_threshold)


def from_log_weights(log_ws: list[torch.Tensor], num_dims: int, khat_threshold: float) -> LogLikelihood:
    """The estimate of each datum from its importance log-weights, one ``(C, S)`` tensor per block of
    data: ``log mean w``, its delta-method standard error and the weights' PSIS ``k``."""
    estimates, errors, ks = [], [], []
    for log_w in log_ws:
        log_w = log_w.double().detach()  # estimates, not a loss
        num_samples = log_w.shape[-1]
        lse = torch.logsumexp(log_w, -1)
        estimates.append(lse - math.log(num_samples))
        normalized = torch.exp(2 * (log_w - lse[:, None])).sum(-1)
        errors.append((normalized - 1.0 / num_samples).clamp(min=0).sqrt())
        ks.append(pareto_k(log_w.numpy()) if num_samples > 1 else np.full(len(log_w), np.nan))
    return LogLikelihood(
        per_datum=torch.cat(estimates),
        standard_error=torch.cat(errors),
        pareto_k=np.concatenate(ks),
        num_samples=log_ws[0].shape[-1],
        num_dims=num_dims,
        khat_threshold=khat_threshold,
    )
