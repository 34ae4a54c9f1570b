"""All representation metrics of a fitted model/guide pair in one dictionary."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pyro.util import get_rng_state, set_rng_state

from pyromim.data.batches import Batch, DataArg, batch_length, data_tensor, take
from pyromim.metrics.active_units import active_units
from pyromim.metrics.aggregate_mi import AggregateMI, mutual_information
from pyromim.metrics.ais import DEFAULT_CHAINS, ais_log_likelihood
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET
from pyromim.metrics.classification import knn_accuracy
from pyromim.metrics.code_reliance import code_reliance
from pyromim.metrics.consistency import generation_consistency
from pyromim.metrics.decoding import Decoding, greedy_reconstruction, is_autoregressive, is_token_sequence
from pyromim.metrics.encodings import encode
from pyromim.metrics.ksg import ksg_mutual_information
from pyromim.metrics.likelihood import LogLikelihood, log_likelihood, nll_unreliable
from pyromim.metrics.marginal_entropy import marginal_entropy
from pyromim.metrics.rate import rate
from pyromim.metrics.reconstruction import Reconstruction, reconstruction_error
from pyromim.metrics.token_likelihood import TokenLikelihood, token_likelihood
from pyromim.metrics.trace_layout import inspect_layout, run_pair

logger = logging.getLogger(__name__)

#: Adam steps of the proposals :func:`evaluate` refits where the guide's NLL estimate is unreliable.
AUTO_REFIT_STEPS = 100

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


def evaluation_size_problem(
    n_items: int,
    n_train: int | None = None,
    *,
    ksg_k: int = 5,
    knn_k: int = 5,
    keys: Sequence[str] | None = None,
) -> str | None:
    """Why :func:`evaluate` cannot work on ``n_items`` items (with ``n_train`` labelled
    training items for the KNN accuracy, or leave-one-out when ``None``), or ``None``.
    With ``keys``, only the sizes the metrics named need (the KSG estimate, the KNN accuracy)."""
    if keys is not None and not {"mi_ksg", "knn5_accuracy", "knn5_accuracy_sampled"} & set(keys):
        return None
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
    nll_refit_steps: int | None = None,
    nll_ais_steps: int = 0,
    nll_ais_chains: int = DEFAULT_CHAINS,
) -> dict[str, float]:
    """Evaluate a model/guide pair on ``data``; keys are :data:`EVALUATE_KEYS` (or ``keys``).

    ``data`` (and ``train_data``) is a tensor of data points for ``model(x)`` /
    ``guide(x)``, or a tuple/dict batch of the model's arguments for any other
    signature (``(xs, ys)`` for ``model(xs, ys)``; see
    :mod:`pyromim.data.batches`): every tensor of the batch's length is split
    into chunks together. ``data_arg`` names the data argument of such a batch
    (its position or key; default the first tensor): the KSG estimate pairs
    that tensor, flattened per datum, with the code.

    Each metric is described in :ref:`evaluate-metrics`.

    :param keys: the metrics to compute, in the order wanted (default
        :data:`EVALUATE_KEYS`, plus the :data:`SEQUENCE_KEYS` that apply to
        the model's observed site); the others are not computed, so
        ``keys=("mi_ksg",)`` skips the costly NLL.
    :param nll_refit_steps: the NLL's proposal. ``None`` (default): the guide, and where more
        than :data:`~pyromim.metrics.likelihood.UNRELIABLE_FRACTION` of the data have a PSIS
        ``k`` above 0.7 (a sharp MIM or A-MIM encoder), per-datum Gaussians refitted to each
        datum's posterior with :data:`AUTO_REFIT_STEPS` Adam steps instead (logged; the
        ``psis_khat_bad_fraction`` reported is then the refitted proposal's). ``0``: the guide
        always; ``N > 0``: proposals refitted with ``N`` steps always (see
        :func:`~pyromim.metrics.log_likelihood`).
    :param nll_ais_steps: if > 0, the NLL is estimated by annealed importance sampling instead
        (:func:`~pyromim.metrics.ais_log_likelihood`) with this many temperatures and
        ``nll_ais_chains`` chains per item, started from the proposal ``nll_refit_steps`` names
        (``None``: refitted with :data:`AUTO_REFIT_STEPS` steps; ``0``: the guide). For encoders
        whose posterior no refitted Gaussian matches; it costs about ``nll_ais_steps`` scoring
        passes with gradients per chain.
    """
    if nll_refit_steps is not None and nll_refit_steps < 0:
        raise ValueError(f"nll_refit_steps must be None (automatic), 0 (the guide) or > 0, got {nll_refit_steps}")
    if nll_ais_steps < 0 or nll_ais_chains < 1:
        raise ValueError(
            f"nll_ais_steps must be >= 0 (0: importance sampling) and nll_ais_chains >= 1, got "
            f"{nll_ais_steps} and {nll_ais_chains}"
        )
    kind = observed_kind(model, guide, data)
    wanted = _wanted_keys(keys, kind)
    metrics = _Evaluation(
        model,
        guide,
        data,
        labels,
        train_data,
        train_labels,
        num_samples=num_samples,
        ksg_k=ksg_k,
        ksg_max_points=ksg_max_points,
        active_threshold=active_threshold,
        plate_name=plate_name,
        memory_budget=memory_budget,
        data_arg=data_arg,
        kind=kind,
        wanted=wanted,
        nll_refit_steps=nll_refit_steps,
        nll_ais_steps=nll_ais_steps,
        nll_ais_chains=nll_ais_chains,
    )
    return {key: metrics.value(key) for key in wanted}


def _wanted_keys(keys: Sequence[str] | None, kind: str) -> tuple[str, ...]:
    """The metrics :func:`evaluate` computes, in order: ``keys``, else the defaults for the ``kind`` of
    observed site (see :func:`observed_kind`); an unknown key is refused, naming the known ones."""
    known = EVALUATE_KEYS + OPTIONAL_KEYS + SEQUENCE_KEYS
    if keys is None:
        extra = {"tokens": _TOKEN_KEYS, "autoregressive": _AUTOREGRESSIVE_KEYS, "other": ()}[kind]
        wanted = EVALUATE_KEYS + extra
    else:
        wanted = tuple(keys)
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"evaluate: unknown metric(s) {unknown}; the metrics are {known}")
    return wanted


@dataclass
class _Evaluation:
    """The metrics of one :func:`evaluate` call (its arguments by the same names), each computed when
    asked for; the estimates several metrics read (likelihood, reconstruction, aggregate MI,
    consistency, greedy decoding, token likelihood) are computed once, by the first of them."""

    model: Callable
    guide: Callable
    data: Batch
    labels: np.ndarray | torch.Tensor | None
    train_data: Batch | None
    train_labels: np.ndarray | torch.Tensor | None
    num_samples: int
    ksg_k: int
    ksg_max_points: int
    active_threshold: float
    plate_name: str | None
    memory_budget: int
    data_arg: DataArg
    kind: str
    wanted: tuple[str, ...]
    nll_refit_steps: int | None = None
    nll_ais_steps: int = 0
    nll_ais_chains: int = DEFAULT_CHAINS

    @property
    def budget(self) -> dict[str, Any]:
        """The plate and memory budget every metric takes."""
        return {"plate_name": self.plate_name, "memory_budget": self.memory_budget}

    @functools.cached_property
    def likelihood(self) -> LogLikelihood:
        """The importance-sampled likelihood (``nll``, its bits per dimension, the PSIS diagnostic),
        re-estimated with refitted proposals where the guide's is unreliable (see ``nll_refit_steps``),
        or annealed (``nll_ais_steps``)."""
        steps = self.nll_refit_steps
        if self.nll_ais_steps:
            start = AUTO_REFIT_STEPS if steps is None else steps
            estimate = ais_log_likelihood(
                self.model,
                self.guide,
                self.data,
                self.nll_ais_chains,
                num_steps=self.nll_ais_steps,
                refit_steps=start,
                **self.budget,
            )
            logger.info(
                "nll: annealed importance sampling, %d temperatures, %d chains an item, from %s: "
                "%.0f%% of the items with a PSIS k-hat above %.1f",
                self.nll_ais_steps,
                self.nll_ais_chains,
                f"the guide refitted with {start} Adam steps" if start else "the guide",
                100 * estimate.khat_bad_fraction,
                estimate.khat_threshold,
            )
            return estimate
        estimate = log_likelihood(
            self.model, self.guide, self.data, self.num_samples, refit_steps=steps or 0, **self.budget
        )
        if steps is None and nll_unreliable(estimate.khat_bad_fraction):
            # the random state is set back afterwards, so the metrics after it draw what they would have
            state = get_rng_state()
            refitted = log_likelihood(
                self.model, self.guide, self.data, self.num_samples, refit_steps=AUTO_REFIT_STEPS, **self.budget
            )
            set_rng_state(state)
            logger.info(
                "nll: with the guide as proposal %.0f%% of the items had a PSIS k-hat above %.1f; "
                "re-estimated with per-datum proposals refitted to each posterior (%d Adam steps): %.0f%%",
                100 * estimate.khat_bad_fraction,
                estimate.khat_threshold,
                AUTO_REFIT_STEPS,
                100 * refitted.khat_bad_fraction,
            )
            estimate = refitted
        return estimate

    @functools.cached_property
    def reconstruction(self) -> Reconstruction:
        """The reconstruction errors through the posterior mean (and sampled, when asked for)."""
        sampled = "recon_error_sampled" in self.wanted
        return reconstruction_error(self.model, self.guide, self.data, **self.budget, sampled=sampled)

    @functools.cached_property
    def aggregate_mi(self) -> AggregateMI:
        """The aggregate-posterior mutual information and its standard error."""
        return mutual_information(self.guide, self.data, **self.budget)

    @functools.cached_property
    def consistency(self) -> _ConsistencyEstimate:
        """The generation consistency and its standard error."""
        return _consistency(self.model, self.guide, self.data, **self.budget)

    @functools.cached_property
    def decoding(self) -> Decoding:
        """The greedy decodes from the posterior mean, scored against the data."""
        return greedy_reconstruction(self.model, self.guide, self.data, **self.budget)

    @functools.cached_property
    def _token_likelihood(self) -> TokenLikelihood:
        """The per-token likelihood, from the same estimate as ``nll``."""
        return token_likelihood(self.model, self.guide, self.data, likelihood=self.likelihood, **self.budget)

    def tokens(self) -> TokenLikelihood | None:
        """The token likelihood; ``None`` (logged) when no observed site holds token sequences."""
        if self.kind != "tokens":
            logger.info("nll_per_token and perplexity are NaN: no observed site holds token sequences")
            return None
        return self._token_likelihood

    def token_metric(self, name: Literal["nll_per_token", "perplexity"]) -> float:
        """The token likelihood's ``name``; NaN (logged) when no observed site holds token sequences."""
        tokens = self.tokens()
        return math.nan if tokens is None else float(getattr(tokens, name))

    def recon_error(self) -> float:
        """``recon_error``: wrong tokens per sequence for token data, else the distance to the reconstruction."""
        if self.kind == "tokens":
            logger.info("recon_error of token sequences: mean wrong tokens per sequence of the greedy decode")
            return self.decoding.wrong_tokens
        return self.reconstruction.error

    def mi_ksg(self) -> float:
        """``mi_ksg``: the KSG estimate between the data and one draw of the code each."""
        subset = take(self.data, slice(self.ksg_max_points))
        layout = inspect_layout(None, self.guide, self.data, self.plate_name)
        z = encode(self.guide, subset, layout, "sample", self.memory_budget)
        return ksg_mutual_information(data_tensor(subset, self.data_arg).reshape(len(z), -1), z, k=self.ksg_k)

    def knn5(self, latents: Literal["mean", "sample"] = "mean") -> float:
        """The 5-NN accuracy on the posterior means (or on one draw each)."""
        knn_args = (self.guide, self.data, self.labels, self.train_data, self.train_labels)
        return _knn5(*knn_args, **self.budget, latents=latents)

    def value(self, key: str) -> float:
        """The metric ``key`` (one of :data:`EVALUATE_KEYS`, :data:`OPTIONAL_KEYS`, :data:`SEQUENCE_KEYS`)."""
        model, guide, data, budget = self.model, self.guide, self.data, self.budget
        few_samples = max(2, min(self.num_samples, 100))
        compute: dict[str, Callable[[], float]] = {
            "nll": lambda: self.likelihood.nll,
            "nll_bits_per_dim": lambda: self.likelihood.nll_bits_per_dim,
            "psis_khat_bad_fraction": lambda: self.likelihood.khat_bad_fraction,
            "mi_ksg": self.mi_ksg,
            "mi_aggregate": lambda: self.aggregate_mi.mi,
            "mi_aggregate_se": lambda: self.aggregate_mi.stderr,
            "active_units": lambda: active_units(guide, data, self.active_threshold, **budget).num_active,
            "knn5_accuracy": self.knn5,
            "recon_error": self.recon_error,
            "consistency": lambda: self.consistency.r2,
            "consistency_se": lambda: self.consistency.stderr,
            "h_q_x": lambda: marginal_entropy(model, guide, data, **budget).entropy,
            "recon_error_sampled": lambda: self.reconstruction.sampled_error,
            "knn5_accuracy_sampled": lambda: self.knn5("sample"),
            "nll_per_token": lambda: self.token_metric("nll_per_token"),
            "perplexity": lambda: self.token_metric("perplexity"),
            "rate": lambda: rate(model, guide, data, num_samples=few_samples, **budget).mean,
            "code_gap": lambda: code_reliance(model, guide, data, num_samples=few_samples, **budget).gap,
            "token_accuracy": lambda: self.decoding.token_accuracy,
            "wrong_tokens": lambda: self.decoding.wrong_tokens,
            "bleu4": lambda: self.decoding.bleu,
            "pixel_error_rate": lambda: self.decoding.element_error_rate,
        }
        return compute[key]()


class _ConsistencyEstimate(NamedTuple):
    """:func:`~pyromim.metrics.generation_consistency`'s ``r2`` and its standard error (NaN when not measured)."""

    r2: float
    stderr: float


def _consistency(model: Callable, guide: Callable, data: Batch, **budget) -> _ConsistencyEstimate:
    try:
        result = generation_consistency(model, guide, data, **budget)
    except ValueError as err:
        logger.warning("consistency not measured: %s", err)
        return _ConsistencyEstimate(math.nan, math.nan)
    return _ConsistencyEstimate(result.r2, result.stderr)
