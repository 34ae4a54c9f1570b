"""Autoregressive likelihoods ``p(x | z)``: strong decoders a spec can name.

Each likelihood owns a conditional autoregressive network (from :mod:`pyromim.nn`)
and turns the latent ``z`` into the matching distribution of
:mod:`pyromim.distributions`, whose ``log_prob`` is one teacher-forced pass and
whose ``sample()`` is ancestral, so the decoder side of symmetric MIM draws true
samples of ``p(x|z)``. The model's decoder network is the identity: the network
reads ``z`` itself (as its context), and the spec's ``[decoder]`` table sizes it.

==============  =========================  =================================================
name            data                       network (``[decoder]`` keys)
==============  =========================  =================================================
made            binary vectors ``[D]``     :class:`~pyromim.nn.MADE` (``hidden``, ``activation``)
pixelcnn        binary images ``[H, W]``   :class:`~pyromim.nn.GatedPixelCNN` (``channels``:
                                           one width per gated layer)
gru             token sequences ``[L]``    :class:`~pyromim.nn.GRULanguageModel` (``hidden``:
                                           one state size per layer, ``embedding_dim``)
==============  =========================  =================================================

Token sequences are stored as :func:`pyromim.data.load_text` stores them: ids,
``<eos>``, then ``<pad>`` (ids 0, 1, 2 for ``<pad>``, ``<bos>``, ``<eos>``). A
point reconstruction is the greedy decode from ``z``, which feeds no observed
value in. An encoder reads token sequences one-hot (feature shape ``[L, V]``),
which the ``gru`` encoder network (:data:`pyromim.nn.NETWORKS`) turns back into
ids; images reach an encoder with a channel axis (``[1, H, W]``).
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.distributions import TorchDistribution

from pyromim.blocks.likelihood_base import BinaryValues, DataSupportError, Likelihood, OneHotTokens, is_integer
from pyromim.distributions import MADEDistribution, PixelCNNDistribution, TokenSequenceDistribution
from pyromim.nn import MADE, GatedPixelCNN, GRULanguageModel

__all__ = ["AutoregressiveLikelihood", "GRULikelihood", "MADELikelihood", "PixelCNNLikelihood"]


class AutoregressiveLikelihood(Likelihood):
    """Base class: ``p(x | z)`` from a network conditioned on ``z`` (the decoder's output is ``z``).

    Subclasses build ``self.net`` and implement ``distribution(z)``.
    """

    #: the model's decoder is the identity: this likelihood's network reads ``z``
    owns_decoder = True

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__(data_shape)
        if latent_dim < 1:
            raise ValueError(f"{self.name} likelihood: latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = int(latent_dim)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """The decoder output for one datum: ``z`` itself."""
        return (self.latent_dim,)

    def forward(self, params: torch.Tensor) -> TorchDistribution:
        if params.shape[-1:] != self.param_shape:
            raise ValueError(
                f"{self.name} likelihood: expected the latent z with trailing size {self.latent_dim}, "
                f"got shape {tuple(params.shape)}"
            )
        return self.distribution(params)

    def point_estimate(self, params: torch.Tensor) -> torch.Tensor:
        """The greedy decode from ``z``: the most probable value at each step given the decoded prefix."""
        return self.distribution(params).greedy()


class MADELikelihood(BinaryValues, AutoregressiveLikelihood):
    """Binary vectors ``[D]`` from a conditional :class:`~pyromim.nn.MADE`."""

    name = "made"

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        d = spec.decoder
        return cls(tuple(spec.data.shape), spec.model.latent_dim, tuple(d.hidden), d.activation)

    def __init__(
        self, data_shape: tuple[int, ...], latent_dim: int, hidden: tuple[int, ...] = (128,), activation: str = "relu"
    ) -> None:
        super().__init__(data_shape, latent_dim)
        if len(self.data_shape) != 1:
            raise ValueError(f"made likelihood: data must be flat vectors (shape [D]), got shape {list(data_shape)}")
        self.net = MADE(self.data_shape[0], self.latent_dim, hidden, activation=activation)

    def distribution(self, params):
        return MADEDistribution(self.net, params)


class PixelCNNLikelihood(BinaryValues, AutoregressiveLikelihood):
    """Binary images ``[H, W]`` from a conditional :class:`~pyromim.nn.GatedPixelCNN`."""

    name = "pixelcnn"

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        return cls(tuple(spec.data.shape), spec.model.latent_dim, tuple(spec.decoder.channels))

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, channels: tuple[int, ...] = (32,) * 4) -> None:
        super().__init__(data_shape, latent_dim)
        if len(self.data_shape) != 2:
            raise ValueError(
                f"pixelcnn likelihood: data must be images of shape [H, W] (one channel, no channel axis), "
                f"got shape {list(data_shape)}; set [data] shape = [H, W]"
            )
        if not channels or len(set(channels)) != 1:
            raise ValueError(
                f"pixelcnn likelihood: [decoder] channels must give one width per gated layer, all equal "
                f"(e.g. [32, 32, 32, 32]), got {list(channels)}"
            )
        h, w = self.data_shape
        self.net = GatedPixelCNN((h, w), self.latent_dim, channels=channels[0], num_layers=len(channels))

    @property
    def feature_shape(self):
        return (1,) + self.data_shape

    def encoder_input(self, x):
        return super().encoder_input(x).unsqueeze(-3)

    def distribution(self, params):
        return PixelCNNDistribution(self.net, params)


class GRULikelihood(OneHotTokens, AutoregressiveLikelihood):
    """Token sequences ``[L]`` (ids, ``<eos>``, ``<pad>``) from a conditional GRU language model."""

    name = "gru"
    support_kind = "tokens"
    spec_kinds = ("tokens",)

    @classmethod
    def from_spec(cls, spec: Any) -> Likelihood:
        d = spec.decoder
        return cls(
            tuple(spec.data.shape), spec.model.latent_dim, spec.data.vocab_size, tuple(d.hidden), d.embedding_dim
        )

    def __init__(
        self,
        data_shape: tuple[int, ...],
        latent_dim: int,
        vocab_size: int,
        hidden: tuple[int, ...] = (128,),
        embedding_dim: int = 64,
    ) -> None:
        super().__init__(data_shape, latent_dim)
        if len(self.data_shape) != 1:
            raise ValueError(f"gru likelihood: data must be token sequences (shape [L]), got shape {list(data_shape)}")
        if vocab_size is None or vocab_size < 4:
            raise ValueError(
                f"gru likelihood: [data] vocab_size must count the special tokens <pad>, <bos>, <eos> and at "
                f"least one word (>= 4), got {vocab_size}"
            )
        if not hidden or len(set(hidden)) != 1:
            raise ValueError(
                f"gru likelihood: [decoder] hidden must give one state size per recurrent layer, all equal "
                f"(e.g. [128]), got {list(hidden)}"
            )
        self.vocab_size = int(vocab_size)
        self.support_text = f"token ids 0 .. {self.vocab_size - 1}, <eos> (2) then <pad> (0) after each sentence"
        self.net = GRULanguageModel(
            self.vocab_size, self.latent_dim, embedding_dim=embedding_dim, hidden_size=hidden[0], num_layers=len(hidden)
        )

    def distribution(self, params):
        return TokenSequenceDistribution(self.net, params, self.data_shape[0])

    def in_support(self, x):
        return is_integer(x) and bool((x >= 0).all() and (x < self.vocab_size).all())

    def check_support(self, x: torch.Tensor) -> None:
        """Also refuse sequences whose ``<eos>``/``<pad>`` layout is wrong, naming the first bad entry."""
        super().check_support(x)
        try:
            self.distribution(torch.zeros(self.latent_dim))._check_support(x.long())
        except ValueError as err:
            raise DataSupportError(f"data given to the gru likelihood: {err}") from None
