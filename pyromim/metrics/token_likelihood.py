"""Per-token negative log-likelihood and perplexity of token sequences.

With ``log p(x_i)`` the importance-sampled marginal log-likelihood of
sequence ``i`` (:func:`~pyromim.metrics.log_likelihood`, with its PSIS
diagnostics) and ``n_i`` the tokens its distribution scores (up to and
including the first ``<eos>``, as the distribution's ``lengths`` counts them;
``<pad>`` after it does not count):

    nll_per_token_i = -log p(x_i) / n_i,
    perplexity      = exp( -sum_i log p(x_i) / sum_i n_i ).

The perplexity pools tokens over the corpus (the usual language-model
convention), so long sequences weigh more than in the mean of
``nll_per_token_i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyromim.data.batches import Batch, batch_length, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.decoding import base_distribution, is_token_sequence
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.likelihood import LogLikelihood, log_likelihood
from pyromim.metrics.per_datum import site_values
from pyromim.metrics.trace_layout import TraceLayout, inspect_layout, run_pair


@dataclass(frozen=True)
class TokenLikelihood:
    """Per-sequence token counts and NLL per token (nats); ``likelihood`` holds the per-datum estimate."""

    likelihood: LogLikelihood
    num_tokens: torch.Tensor

    @property
    def per_datum(self) -> torch.Tensor:
        """``-log p(x_i) / n_i`` per datum."""
        return -self.likelihood.per_datum / self.num_tokens

    @property
    def nll_per_token(self) -> float:
        """Corpus NLL per token, ``-sum_i log p(x_i) / sum_i n_i`` (nats)."""
        return -self.likelihood.per_datum.sum().item() / float(self.num_tokens.sum())

    @property
    def perplexity(self) -> float:
        """``exp(nll_per_token)``."""
        return math.exp(self.nll_per_token)


def token_sites(layout: TraceLayout, model_sites: dict[str, dict]) -> tuple[str, ...]:
    """The observed sites whose distributions score token sequences."""
    return tuple(n for n in layout.observed_sites if is_token_sequence(model_sites[n]["fn"]))


@torch.no_grad()
def token_counts(
    model: Callable,
    guide: Callable,
    data: Batch,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """``(N,)`` tokens scored per datum: the ``lengths`` of every token-sequence site, summed per datum.

    Raises ``ValueError`` when no observed site holds token sequences.
    """
    layout = inspect_layout(model, guide, data, plate_name)
    chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), 1)
    counts = []
    for span in spans(batch_length(data), chunk):
        _, model_sites = run_pair(model, guide, take(data, span))
        names = token_sites(layout, model_sites)
        if not names:
            raise ValueError(
                f"no observed site of the model holds token sequences (sites {list(layout.observed_sites)}); "
                "per-token NLL needs a distribution with lengths() and eos_id such as TokenSequenceDistribution"
            )
        total = torch.zeros(span.stop - span.start, dtype=torch.long)
        for name in names:
            site = model_sites[name]
            length = int(site["fn"].event_shape[-1])
            values = site_values(name, site, layout)[0].long()
            total += base_distribution(site["fn"]).lengths(values.reshape(values.shape[0], -1, length)).sum(-1)
        counts.append(total)
    return torch.cat(counts)


@torch.no_grad()
def token_likelihood(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 1000,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    likelihood: LogLikelihood | None = None,
) -> TokenLikelihood:
    """Importance-sampled NLL per token and perplexity of the token sequences in ``data``.

    :param num_samples: importance samples per datum for :func:`~pyromim.metrics.log_likelihood`.
    :param likelihood: an estimate already made on the same ``data`` (reused, not recomputed).
    """
    counts = token_counts(model, guide, data, plate_name=plate_name, memory_budget=memory_budget)
    if likelihood is None:
        likelihood = log_likelihood(model, guide, data, num_samples, plate_name=plate_name, memory_budget=memory_budget)
    if len(likelihood.per_datum) != len(counts):
        raise ValueError(
            f"the likelihood estimate has {len(likelihood.per_datum)} data points but data has {len(counts)}; "
            "pass the estimate made on this data"
        )
    return TokenLikelihood(likelihood=likelihood, num_tokens=counts.to(likelihood.per_datum.dtype))
