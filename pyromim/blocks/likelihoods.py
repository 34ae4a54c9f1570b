"""Likelihoods ``p(x | z)``: turn a decoder's output into a distribution over ``x``.

A likelihood for data of shape ``data_shape`` expects decoder outputs of shape
``batch + (n_params,) + data_shape`` (``n_params`` numbers per data element,
e.g. a mean and a log-variance) and returns a distribution whose
``event_shape`` is ``data_shape``. It also says how data are fed to an encoder
(:meth:`Likelihood.encoder_input`), what a point reconstruction is
(:meth:`Likelihood.point_estimate`), and checks that data lie in its support
(:meth:`Likelihood.check_support`), naming a likelihood that fits when they
do not.

=====================  ==========================  =====================================
name                   data                        parameters per element
=====================  ==========================  =====================================
bernoulli              {0, 1}                      logit
gaussian               real                        mean (+ log-variance if per_datum)
discretized_logistic   k / (n_bins - 1) in [0, 1]  location, log-scale
categorical            integers 0 .. V-1           V logits
poisson                integers >= 0               log-rate
negative_binomial      integers >= 0               log total count, logit
made                   {0, 1}, vectors             (autoregressive; see below)
pixelcnn               {0, 1}, images [H, W]       (autoregressive)
gru                    token sequences [L]         (autoregressive)
=====================  ==========================  =====================================

The autoregressive likelihoods (:mod:`pyromim.blocks.autoregressive`) own a network
conditioned on ``z`` and take ``z`` itself as their parameters.

:data:`LIKELIHOODS` is the registry a spec's ``[model] likelihood`` names: the
spec's validation reads each class's ``spec_kinds`` (the ``[data] kind`` values
it may be paired with) and the data checks its ``support_kind``; the model
builder calls :meth:`Likelihood.from_spec`.
"""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from pyromim.blocks.autoregressive import GRULikelihood, MADELikelihood, PixelCNNLikelihood
from pyromim.blocks.likelihood_base import BinaryValues, DataSupportError, Likelihood, OneHotTokens, is_integer
from pyromim.distributions import DiscretizedLogistic
from pyromim.nn.gaussian import DEFAULT_MIN_SCALE, floored_scale, resolve_min_scale


class BernoulliLikelihood(BinaryValues, Likelihood):
    """``x_i ~ Bernoulli(sigmoid(logit_i))`` for binary data."""

    name = "bernoulli"

    def distribution(self, params):
        return dist.Bernoulli(logits=params.squeeze(params.dim() - self.event_dims - 1))


class GaussianLikelihood(Likelihood):
    """``x_i ~ N(mu_i, sigma_i^2)`` for real data.

    :param scale: ``"fixed"`` (``sigma = fixed_scale``), ``"learned"`` (one
        learned ``sigma`` per data element, shared by all data) or
        ``"per_datum"`` (the decoder outputs ``raw`` per element and
        ``sigma = exp(raw) + min_scale``, the reference code's
        floored scale, as in :class:`pyromim.nn.GaussianHead`). The ``"learned"``
        standard deviation is clamped at ``min_scale``.
    :param standardize: the networks work in standardised units: the encoder
        sees ``(x - shift) / spread`` and the decoder's ``(mu, sigma)`` are mapped
        back as ``(shift + spread * mu, spread * sigma)``, so every density stays
        in the data's own units. ``shift`` and ``spread`` are the training data's
        per-element mean and standard deviation, set by :meth:`set_data_statistics`
        and saved with the model. For data whose elements differ in scale by
        orders of magnitude (``toy4_20``), where raw inputs saturate tanh units.
    """

    name = "gaussian"
    support_text = "finite real numbers"
    support_kind = "continuous"
    spec_kinds = ("continuous", "binary", "grey")
    SCALES = ("fixed", "learned", "per_datum")

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        m = spec.model
        return cls(
            tuple(spec.data.shape),
            m.likelihood_scale,
            m.likelihood_fixed_scale,
            m.min_scale,
            standardize=spec.data.standardize,
        )

    def __init__(
        self,
        data_shape: tuple[int, ...],
        scale: str = "per_datum",
        fixed_scale: float = 1.0,
        min_scale: float = DEFAULT_MIN_SCALE,
        standardize: bool = False,
        *,
        min_logvar: float | None = None,
    ) -> None:
        super().__init__(data_shape)
        if scale not in self.SCALES:
            raise ValueError(f"gaussian likelihood: scale must be one of {self.SCALES}, got {scale!r}")
        self.scale_mode = scale
        self.min_scale = resolve_min_scale(min_scale, min_logvar, "gaussian likelihood")
        self.n_params = 2 if scale == "per_datum" else 1
        if scale == "fixed":
            if fixed_scale <= 0:
                raise ValueError(f"gaussian likelihood: fixed_scale must be > 0, got {fixed_scale}")
            self.register_buffer("fixed_scale", torch.tensor(float(fixed_scale)))
        elif scale == "learned":
            self.logvar = nn.Parameter(torch.zeros(self.data_shape))
        self.standardize = bool(standardize)
        if self.standardize:
            self.register_buffer("data_shift", torch.zeros(self.data_shape))
            self.register_buffer("data_spread", torch.ones(self.data_shape))
            self.register_buffer("data_statistics_set", torch.tensor(False))

    def set_data_statistics(self, x: torch.Tensor) -> None:
        """Standardise with the per-element mean and standard deviation of training data ``x``.

        ``x`` has shape ``(N, *data_shape)``; elements that never vary get a spread of 1.
        """
        if not self.standardize:
            raise ValueError("gaussian likelihood: set_data_statistics needs standardize=True")
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.dim() != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape or x.shape[0] < 2:
            raise ValueError(
                f"gaussian likelihood: data statistics need data of shape (N >= 2, "
                f"{', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("gaussian likelihood: data for the statistics contain NaN or infinite values")
        spread = x.std(0)
        spread = torch.where(spread > 0, spread, torch.ones_like(spread))
        with torch.no_grad():
            self.data_shift.copy_(x.mean(0))
            self.data_spread.copy_(spread)
            self.data_statistics_set.fill_(True)

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.data_statistics_set):
            raise RuntimeError(
                "gaussian likelihood standardises the data ([data] standardize = true) but holds no "
                "training statistics yet: call model.likelihood.set_data_statistics(train_x) before "
                "training (pyromim.experiments.run and `pyromim train` do this)"
            )
        return self.data_shift, self.data_spread

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        x = super().encoder_input(x)
        if not self.standardize:
            return x
        shift, spread = self._statistics()
        return (x - shift) / spread

    def scale(self, params: torch.Tensor) -> torch.Tensor:
        """Standard deviation ``sigma`` (broadcastable against the mean)."""
        if self.scale_mode == "fixed":
            return self.fixed_scale
        if self.scale_mode == "learned":
            return torch.exp(0.5 * self.logvar.clamp(min=2.0 * math.log(self.min_scale)))
        raw = self._split(params, 2, self.event_dims)[1]
        return floored_scale(raw, self.min_scale)

    def distribution(self, params):
        loc = self._split(params, self.n_params, self.event_dims)[0]
        scale = self.scale(params).expand(loc.shape)
        if self.standardize:  # the network works in standardised units; densities stay in the data's
            shift, spread = self._statistics()
            loc, scale = shift + spread * loc, spread * scale
        return dist.Normal(loc, scale)

    def in_support(self, x):
        return True


class DiscretizedLogisticLikelihood(Likelihood):
    """``x_i ~ DiscretizedLogistic(mu_i, s_i)`` on ``n_bins`` levels of ``[0, 1]``.

    Data are grey levels scaled to ``[0, 1]`` (8-bit values divided by 255).
    The decoder outputs ``mu`` and ``log s`` (floored at ``min_logscale``).
    """

    name = "discretized_logistic"
    n_params = 2
    support_kind = "grey"
    spec_kinds = ("grey",)

    def __init__(self, data_shape: tuple[int, ...], n_bins: int = 256, min_logscale: float = -7.0) -> None:
        super().__init__(data_shape)
        self.n_bins = int(n_bins)
        self.min_logscale = float(min_logscale)
        self.support_text = f"grey levels k / {self.n_bins - 1} in [0, 1]"

    def distribution(self, params):
        loc, log_scale = self._split(params, 2, self.event_dims)
        return DiscretizedLogistic(loc, log_scale.clamp(min=self.min_logscale).exp(), self.n_bins)

    def point_estimate(self, params):
        loc = self._split(params, 2, self.event_dims)[0]
        grid = self.n_bins - 1
        return (loc.clamp(0, 1) * grid).round() / grid

    def in_support(self, x):
        grid = x.double() * (self.n_bins - 1)
        return bool((x >= 0).all() and (x <= 1).all() and ((grid - grid.round()).abs() < 1e-3).all())


class CategoricalLikelihood(OneHotTokens, Likelihood):
    """``x_i ~ Categorical(softmax(logits_i))`` for integer tokens ``0 .. vocab_size - 1``.

    The encoder sees tokens one-hot encoded (feature shape ``data_shape + (V,)``);
    the point estimate is the most probable token.
    """

    name = "categorical"
    support_kind = "tokens"
    spec_kinds = ("tokens",)

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        return cls(tuple(spec.data.shape), spec.data.vocab_size)

    def __init__(self, data_shape: tuple[int, ...], vocab_size: int) -> None:
        super().__init__(data_shape)
        if vocab_size < 2:
            raise ValueError(f"categorical likelihood: vocab_size must be >= 2, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.n_params = self.vocab_size
        self.support_text = f"integers 0 .. {self.vocab_size - 1}"

    def distribution(self, params):
        return dist.Categorical(logits=params.movedim(params.dim() - self.event_dims - 1, -1))

    def point_estimate(self, params):
        return self.distribution(params).logits.argmax(-1)

    def in_support(self, x):
        return is_integer(x) and bool((x >= 0).all() and (x < self.vocab_size).all())


class _CountLikelihood(Likelihood):
    support_text = "non-negative integers"
    support_kind = "counts"
    spec_kinds = ("counts",)

    def encoder_input(self, x):
        return torch.log1p(x.to(torch.get_default_dtype()))

    def in_support(self, x):
        return is_integer(x) and bool((x >= 0).all())


class PoissonLikelihood(_CountLikelihood):
    """``x_i ~ Poisson(exp(log_rate_i))`` for counts (log-rate clamped to [-20, 20])."""

    name = "poisson"

    def distribution(self, params):
        log_rate = params.squeeze(params.dim() - self.event_dims - 1).clamp(-20.0, 20.0)
        return dist.Poisson(log_rate.exp())


class NegativeBinomialLikelihood(_CountLikelihood):
    """``x_i ~ NegativeBinomial(r_i, logit_i)`` for over-dispersed counts.

    ``P(x) = C(x + r - 1, x) (1 - p)^r p^x`` with ``p = sigmoid(logit)``
    (torch's convention), ``r = exp(log_r)``, ``log_r`` clamped to [-10, 10].
    """

    name = "negative_binomial"
    n_params = 2

    def distribution(self, params):
        log_r, logits = self._split(params, 2, self.event_dims)
        return dist.NegativeBinomial(total_count=log_r.clamp(-10.0, 10.0).exp(), logits=logits)


#: The likelihoods a spec can name, by name (the spec's validation, the data checks and the builder read this).
LIKELIHOODS: dict[str, type[Likelihood]] = {
    cls.name: cls
    for cls in (
        BernoulliLikelihood,
        GaussianLikelihood,
        DiscretizedLogisticLikelihood,
        CategoricalLikelihood,
        PoissonLikelihood,
        NegativeBinomialLikelihood,
        MADELikelihood,
        PixelCNNLikelihood,
        GRULikelihood,
    )
}


__all__ = [
    "LIKELIHOODS",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "DataSupportError",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "GRULikelihood",
    "Likelihood",
    "MADELikelihood",
    "NegativeBinomialLikelihood",
    "PixelCNNLikelihood",
    "PoissonLikelihood",
]
