"""Entropy of the encoder's marginal ``q(x)`` with the one-sample marginal estimate.

The MIM paper's ``H_q(x)`` panel estimates ``log q(x)`` (the density that the
``"marginal"`` choice of :class:`pyromim.Trace_MIM` uses) with one importance
sample through the model,

    log q(x) ~= log p(x | z) + log p(z) - log q(z | x),     z ~ q(z | x),

and reports the average over the data

    H_q(x) = -(1/N) sum_i log q(x_i).

Per datum the estimate is a single log importance weight: its expectation is
the ELBO of ``x_i`` (Jensen), so ``H_q(x)`` estimates ``-mean ELBO``, an upper
bound on the model's NLL that is tight when ``q(z|x)`` is the exact posterior
(then every weight equals ``p(x)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyromim.data.batches import Batch, batch_length, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import log_weights
from pyromim.metrics.trace_layout import inspect_layout


@dataclass(frozen=True)
class MarginalEntropy:
    """``H_q(x)`` (nats) and the per-datum one-sample ``log q(x)`` estimates."""

    entropy: float
    per_datum_log_q: torch.Tensor


def marginal_entropy(
    model: Callable,
    guide: Callable,
    data: Batch,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> MarginalEntropy:
    """``H_q(x) = -mean_i [log p(x_i|z_i) + log p(z_i) - log q(z_i|x_i)]``, ``z_i ~ q(z|x_i)``.

    :param model: Pyro model ``model(x)`` with its observed site(s) in a plate over the data.
    :param guide: Pyro guide ``guide(x)`` sampling every latent site inside that plate.
    :param data: ``(N, ...)`` data points (one draw of ``z`` each).
    """
    layout = inspect_layout(model, guide, data, plate_name)
    data_chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), 1)
    with torch.no_grad():
        per_datum = torch.cat(
            [log_weights(model, guide, take(data, s), 1, layout)[0] for s in spans(batch_length(data), data_chunk)]
        )
    return MarginalEntropy(entropy=-per_datum.double().mean().item(), per_datum_log_q=per_datum)
