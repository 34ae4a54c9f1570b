"""All representation metrics of a fitted model/guide pair in one dictionary."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pyro.util import get_rng_state, set_rng_state

from pyromim.data.batches import Batch, DataArg, batch_length, data_tensor, take
from pyromim.metrics.active_units import active_units
from pyromim.metrics.aggregate_mi import mutual_information
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET
from pyromim.metrics.classification import knn_accuracy
from pyromim.metrics.code_reliance import code_reliance
from pyromim.metrics.consistency import generation_consistency
from pyromim.metrics.decoding import greedy_reconstruction, is_autoregressive, is_token_sequence
from pyromim.metrics.encodings import encode
from pyromim.metrics.ksg import ksg_mutual_information
from pyromim.metrics.likelihood import log_likelihood
from pyromim.metrics.marginal_entropy import marginal_entropy
from pyromim.metrics.rate import rate
from pyromim.metrics.reconstruction import reconstruction_error
from pyromim.metrics.token_likelihood import token_likelihood
from pyromim.metrics.trace_layout import inspect_layout, run_pair

logger = logging.getLogger(__name__)

#: The keys of :func:`evaluate`'s result, in order; outside code relies on them.
EVALUATE_KEYS = (
    "nll",
    "nll_bits_per_dim",
    "psis_khat_bad_fraction",
    "mi_ksg",
    "mi_aggregate",
    "active_units",
    "knn5_accuracy",
    "recon_error",
    "consistency",
    "mi_aggregate_se",
    "consistency_se",
)

#: Keys :func:`evaluate` computes only when asked for by ``keys`` (the MIM
#: reference code's variants, and the data entropy under the encoder).
OPTIONAL_KEYS = ("h_q_x", "recon_error_sampled", "knn5_accuracy_sampled")

#: Keys :func:`evaluate` adds after :data:`EVALUATE_KEYS` (when ``keys`` is not given) for a model
#: whose observed site holds token sequences (all but ``pixel_error_rate``) or another autoregressive
#: distribution (``rate``, ``code_gap``, ``pixel_error_rate``); any model may name them in ``keys``
#: (NaN, logged, where one does not apply).
SEQUENCE_KEYS = (
    "nll_per_token",
    "perplexity",
    "rate",
    "code_gap",
    "token_accuracy",
    "wrong_tokens",
    "bleu4",
    "pixel_error_rate",
)
_TOKEN_KEYS = tuple(k for k in SEQUENCE_KEYS if k != "pixel_error_rate")
_AUTOREGRESSIVE_KEYS = ("rate", "code_gap", "pixel_error_rate")


def _knn5(
    guide: Callable,
    data: Batch,
    labels: np.ndarray | torch.Tensor | None,
    train_data: Batch | None,
    train_labels: np.ndarray | torch.Tensor | None,
    memory_budget: int,
    plate_name: str | None,
    latents: Literal["mean", "sample"] = "mean",
) -> float:
    if (train_data is None) != (train_labels is None):
        raise ValueError("give both train_data and train_labels, or neither")
    if labels is None:
        logger.info("knn5_accuracy is NaN: no labels were given for the data")
        return math.nan
    if len(labels) != batch_length(data):
        raise ValueError(f"labels has {len(labels)} entries but data has {batch_length(data)} points")
    layout = inspect_layout(None, guide, data, plate_name)
    z = encode(guide, data, layout, latents, memory_budget)
    if train_data is None:
        logger.info("knn5_accuracy: no training set given, using leave-one-out on the data")
        return knn_accuracy(z, labels, k=5)
    assert train_labels is not None  # given with train_data (checked above)
    z_train = encode(guide, train_data, layout, latents, memory_budget)
    return knn_accuracy(z_train, train_labels, z, labels, k=5)


def evaluation_size_problem(n_items: int, n_train: int | None = None, *, ksg_k: int = 5, knn_k: int = 5) -> str | None:
    """Why :func:`evaluate` cannot work on ``n_items`` items (with ``n_train`` labelled
    training items for the KNN accuracy, or leave-one-out when ``None``), or ``None``."""
    if n_items < ksg_k + 1:
        return (
            f"{n_items} item(s) are too few to evaluate: the KSG mutual information with k={ksg_k} "
            f"needs at least {ksg_k + 1}"
        )
    if n_train is not None and n_train < knn_k:
        return f"{n_train} training item(s) are too few for the {knn_k}-NN accuracy, which needs at least {knn_k}"
    return None


def observed_kind(model: Callable, guide: Callable, data: Batch) -> Literal["tokens", "autoregressive", "other"]:
    """``"tokens"`` when an observed site holds token sequences, ``"autoregressive"`` when one has another
    autoregressive distribution, else ``"other"`` (one run of the pair on two data points, from a
    random state then set back, so the metrics that follow draw what they drew without it)."""
    state = get_rng_state()
    try:
        _, sites = run_pair(model, guide, take(data, slice(2)))
    finally:
        set_rng_state(state)
    observed = [site["fn"] for site in sites.values() if site["is_observed"]]
    if any(is_token_sequence(fn) for fn in observed):
        return "tokens"
    return "autoregressive" if any(is_autoregressive(fn) for fn in observed) else "other"


@torch.no_grad()
def evaluate(
    model: Callable,
    guide: Callable,
    data: Batch,
    labels: np.ndarray | torch.Tensor | None = None,
    train_data: Batch | None = None,
    train_labels: np.ndarray | torch.Tensor | None = None,
    *,
    num_samples: int = 1000,
    ksg_k: int = 5,
    ksg_max_points: int = 10_000,
    active_threshold: float = 0.01,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    keys: Sequence[str] | None = None,
    data_arg: DataArg = None,
) -> dict[str, float]:
    """Evaluate a model/guide pair on ``data``; keys are :data:`EVALUATE_KEYS` (or ``keys``).

    ``data`` (and ``train_data``) is a tensor of data points for ``model(x)`` /
    ``guide(x)``, or a tuple/dict batch of the model's arguments for any other
    signature (``(xs, ys)`` for ``model(xs, ys)``; see
    :mod:`pyromim.data.batches`): every tensor of the batch's length is split
    into chunks together. ``data_arg`` names the data argument of such a batch
    (its position or key; default the first tensor): the KSG estimate pairs
    that tensor, flattened per datum, with the code.

    * ``nll``, ``nll_bits_per_dim``, ``psis_khat_bad_fraction``:
      :func:`~pyromim.metrics.log_likelihood` with ``num_samples`` draws per datum.
    * ``mi_ksg``: :func:`~pyromim.metrics.ksg_mutual_information` between the
      flattened data and one draw ``z ~ q(z | x)`` each, on the first
      ``ksg_max_points`` points (the reference code used up to 10,000).
    * ``mi_aggregate``: :func:`~pyromim.metrics.mutual_information` (one draw per datum).
    * ``active_units``: the count from :func:`~pyromim.metrics.active_units`.
    * ``knn5_accuracy``: 5-NN accuracy on posterior means, trained on
      ``train_data`` / ``train_labels`` when given, else leave-one-out on ``data``;
      NaN (logged) when ``labels`` is None.
    * ``recon_error``: mean ``||x - x_hat||`` through the posterior mean
      (``x_hat`` the greedy decode for an autoregressive distribution); for token
      sequences, where a Euclidean distance between ids means nothing, the mean
      number of wrong tokens per sequence of the greedy decode (``wrong_tokens``).
    * ``consistency``: :func:`~pyromim.metrics.generation_consistency`'s ``r2``,
      the fraction of latent variance the encoder recovers from data the model
      generates (one draw per item of ``data``); NaN (logged) when the generated
      data cannot be routed to the guide's arguments (e.g. two observed sites
      on one argument).
    * ``mi_aggregate_se``, ``consistency_se``: the standard errors of those two
      estimates over the items (the mutual information is never below 0, and a
      negative ``consistency`` within about two standard errors of 0 means no
      latent variance is recovered: both are then estimator noise around 0).

    Only when named in ``keys`` (:data:`OPTIONAL_KEYS`):

    * ``h_q_x``: :func:`~pyromim.metrics.marginal_entropy`, ``-mean log q(x)``.
    * ``recon_error_sampled``: mean ``||x - x~||`` with ``z ~ q(z|x)``, ``x~ ~ p(x|z)``.
    * ``knn5_accuracy_sampled``: 5-NN accuracy on one draw ``z ~ q(z|x)`` per item
      (training and test parts alike).

    For token sequences and autoregressive decoders (:data:`SEQUENCE_KEYS`, added
    to the defaults for such models):

    * ``nll_per_token``, ``perplexity``: :func:`~pyromim.metrics.token_likelihood`
      from the same importance-sampled estimate as ``nll``: corpus NLL per token
      (tokens up to and including ``<eos>``) and its ``exp``.
    * ``rate``: mean ``KL(q(z|x) || p(z))``, :func:`~pyromim.metrics.rate`
      (analytic for Gaussian pairs, else ``min(num_samples, 100)`` Monte Carlo draws).
    * ``code_gap``: :func:`~pyromim.metrics.code_reliance`'s gap, mean
      ``log p(x | mu(x)) - E_{p(z)} log p(x | z)`` in nats per datum. A collapse
      signal: ``~0`` when the decoder ignores the code, large when ``x`` is far
      more likely at its own posterior mean than at a random prior code
      (``min(num_samples, 100)`` prior draws per datum). Read it
      with ``active_units``; ``knn5_accuracy`` can stay high for a collapsed model.
    * ``token_accuracy``, ``wrong_tokens``, ``bleu4``: greedy decodes from the
      posterior mean with no observed token fed in
      (:func:`~pyromim.metrics.greedy_reconstruction`): share of the data's
      positions (to ``<eos>``) decoded right, wrong tokens per sequence, corpus BLEU-4.
    * ``pixel_error_rate``: the share of elements (pixels) where the greedy
      decode of a discrete, non-token site differs from the data.

    :param keys: the metrics to compute, in the order wanted (default
        :data:`EVALUATE_KEYS`, plus the :data:`SEQUENCE_KEYS` that apply to
        the model's observed site); the others are not computed, so
        ``keys=("mi_ksg",)`` skips the costly NLL.
    """
    known = EVALUATE_KEYS + OPTIONAL_KEYS + SEQUENCE_KEYS
    kind = observed_kind(model, guide, data)
    if keys is None:
        extra = {"tokens": _TOKEN_KEYS, "autoregressive": _AUTOREGRESSIVE_KEYS, "other": ()}[kind]
        wanted = EVALUATE_KEYS + extra
    else:
        wanted = tuple(keys)
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"evaluate: unknown metric(s) {unknown}; the metrics are {known}")
    budget: dict[str, Any] = {"plate_name": plate_name, "memory_budget": memory_budget}
    cache: dict[str, Any] = {}

    def likelihood() -> Any:
        if "ll" not in cache:
            cache["ll"] = log_likelihood(model, guide, data, num_samples, **budget)
        return cache["ll"]

    def reconstruction() -> Any:
        if "recon" not in cache:
            cache["recon"] = reconstruction_error(model, guide, data, **budget, sampled="recon_error_sampled" in wanted)
        return cache["recon"]

    def aggregate_mi() -> Any:
        if "mi" not in cache:
            cache["mi"] = mutual_information(guide, data, **budget)
        return cache["mi"]

    def consistency() -> tuple[float, float]:
        if "consistency" not in cache:
            cache["consistency"] = _consistency(model, guide, data, **budget)
        return cache["consistency"]

    def decoding() -> Any:
        if "decoding" not in cache:
            cache["decoding"] = greedy_reconstruction(model, guide, data, **budget)
        return cache["decoding"]

    def tokens() -> Any:
        if "tokens" not in cache:
            if kind != "tokens":
                logger.info("nll_per_token and perplexity are NaN: no observed site holds token sequences")
                return None
            cache["tokens"] = token_likelihood(model, guide, data, likelihood=likelihood(), **budget)
        return cache["tokens"]

    def recon_error() -> float:
        if kind == "tokens":
            logger.info("recon_error of token sequences: mean wrong tokens per sequence of the greedy decode")
            return decoding().wrong_tokens
        return reconstruction().error

    def mi_ksg() -> float:
        subset = take(data, slice(ksg_max_points))
        z = encode(guide, subset, inspect_layout(None, guide, data, plate_name), "sample", memory_budget)
        return ksg_mutual_information(data_tensor(subset, data_arg).reshape(len(z), -1), z, k=ksg_k)

    knn_args = (guide, data, labels, train_data, train_labels)
    compute: dict[str, Callable[[], float]] = {
        "nll": lambda: likelihood().nll,
        "nll_bits_per_dim": lambda: likelihood().nll_bits_per_dim,
        "psis_khat_bad_fraction": lambda: likelihood().khat_bad_fraction,
        "mi_ksg": mi_ksg,
        "mi_aggregate": lambda: aggregate_mi().mi,
        "mi_aggregate_se": lambda: aggregate_mi().stderr,
        "active_units": lambda: active_units(guide, data, active_threshold, **budget).num_active,
        "knn5_accuracy": lambda: _knn5(*knn_args, **budget),
        "recon_error": recon_error,
        "consistency": lambda: consistency()[0],
        "consistency_se": lambda: consistency()[1],
        "h_q_x": lambda: marginal_entropy(model, guide, data, **budget).entropy,
        "recon_error_sampled": lambda: reconstruction().sampled_error,
        "knn5_accuracy_sampled": lambda: _knn5(*knn_args, **budget, latents="sample"),
        "nll_per_token": lambda: math.nan if tokens() is None else tokens().nll_per_token,
        "perplexity": lambda: math.nan if tokens() is None else tokens().perplexity,
        "rate": lambda: rate(model, guide, data, num_samples=max(2, min(num_samples, 100)), **budget).mean,
        "code_gap": lambda: code_reliance(model, guide, data, num_samples=max(2, min(num_samples, 100)), **budget).gap,
        "token_accuracy": lambda: decoding().token_accuracy,
        "wrong_tokens": lambda: decoding().wrong_tokens,
        "bleu4": lambda: decoding().bleu,
        "pixel_error_rate": lambda: decoding().element_error_rate,
    }
    return {key: compute[key]() for key in wanted}


def _consistency(model: Callable, guide: Callable, data: Batch, **budget) -> tuple[float, float]:
    try:
        result = generation_consistency(model, guide, data, **budget)
    except ValueError as err:
        logger.warning("consistency not measured: %s", err)
        return math.nan, math.nan
    return result.r2, result.stderr
