"""The base class of every likelihood ``p(x | z)`` and its data-support checks (see :mod:`pyromim.blocks.likelihoods`)."""

from __future__ import annotations

from typing import Any

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch.nn.functional import one_hot

__all__ = ["BinaryValues", "DataSupportError", "Likelihood", "OneHotTokens", "is_integer"]


class DataSupportError(ValueError):
    """Data do not lie in the support of the chosen likelihood."""


def _describe(x: torch.Tensor) -> str:
    x = x.detach().double()
    return f"values in [{x.min().item():.4g}, {x.max().item():.4g}]"


def _suggest_for(x: torch.Tensor) -> str:
    """Name the likelihood that fits data like ``x``."""
    x = x.detach().double()
    integer = bool((x == x.round()).all())
    if integer and x.min() >= 0 and x.max() <= 1:
        return "'bernoulli'"
    if x.min() >= 0 and x.max() <= 1 and bool(((x * 255) - (x * 255).round()).abs().max() < 1e-4):
        return "'discretized_logistic' (8-bit grey levels scaled to [0, 1])"
    if integer and x.min() >= 0:
        return "'poisson' or 'negative_binomial' (counts), or 'categorical' (tokens)"
    return "'gaussian'"


class Likelihood(PyroModule):
    """Base class. Subclasses set ``name`` and ``n_params`` and implement ``distribution``.

    ``support_kind`` is the data kind (:data:`pyromim.data.DATA_KINDS`) whose
    values the likelihood scores; ``spec_kinds`` the ``[data] kind`` values a
    spec may pair it with (``support_kind`` first).
    """

    name: str = ""
    n_params: int = 1
    #: whether the likelihood's own network reads ``z`` (the model's decoder is then the identity)
    owns_decoder: bool = False
    support_kind: str = "continuous"
    spec_kinds: tuple[str, ...] = ("continuous",)

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        """The likelihood a :class:`~pyromim.specs.ModelSpec` asks for (data shape from ``[data] shape``)."""
        return cls(tuple(spec.data.shape))

    @property
    def event_dims(self) -> int:
        return len(self.data_shape)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the decoder output for one datum: ``(n_params,) + data_shape``."""
        return (self.n_params,) + self.data_shape

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of :meth:`encoder_input` for one datum."""
        return self.data_shape

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """Float features of ``x`` for an encoder network (identity by default)."""
        return x.to(torch.get_default_dtype()) if not x.is_floating_point() else x

    def forward(self, params: torch.Tensor) -> dist.TorchDistribution:
        if params.shape[params.dim() - len(self.param_shape) :] != self.param_shape:
            raise ValueError(
                f"{self.name} likelihood: decoder output has trailing shape "
                f"{tuple(params.shape[-len(self.param_shape) :])}, expected {self.param_shape}"
            )
        base = self.distribution(params)
        return base.to_event(self.event_dims) if self.event_dims else base

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:  # pragma: no cover
        raise NotImplementedError

    def point_estimate(self, params: torch.Tensor) -> torch.Tensor:
        """A point reconstruction (the mean unless stated otherwise)."""
        return self.distribution(params).mean

    def in_support(self, x: torch.Tensor) -> bool:  # pragma: no cover
        raise NotImplementedError

    def check_support(self, x: torch.Tensor) -> None:
        """Raise :class:`DataSupportError` naming a fitting likelihood if ``x`` is outside the support."""
        if x.shape[x.dim() - self.event_dims :] != self.data_shape:
            raise DataSupportError(
                f"{self.name} likelihood expects data of shape (..., {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x.double()).all()):
            raise DataSupportError(f"data given to the {self.name} likelihood contain NaN or infinite values")
        if not self.in_support(x):
            raise DataSupportError(
                f"data ({_describe(x)}) are outside the support of the '{self.name}' likelihood "
                f"({self.support_text}); data like these fit {_suggest_for(x)}"
            )

    support_text = ""

    @staticmethod
    def _split(params: torch.Tensor, n: int, event_dims: int) -> list[torch.Tensor]:
        axis = params.dim() - event_dims - 1
        return [params.select(axis, i) for i in range(n)]


def is_integer(x: torch.Tensor) -> bool:
    return bool((x == x.round()).all()) if x.is_floating_point() else True


class BinaryValues:
    """Mixin of the likelihoods over binary data (values exactly 0 or 1)."""

    support_text = "exactly 0 or 1"
    support_kind = "binary"
    spec_kinds: tuple[str, ...] = ("binary",)

    def in_support(self, x: torch.Tensor) -> bool:
        return bool(((x == 0) | (x == 1)).all())


class OneHotTokens:
    """Mixin of the likelihoods over token ids ``0 .. vocab_size - 1``: an encoder sees them
    one-hot (feature shape ``data_shape + (vocab_size,)``)."""

    data_shape: tuple[int, ...]
    vocab_size: int

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.data_shape + (self.vocab_size,)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return one_hot(x.long(), self.vocab_size).to(torch.get_default_dtype())
