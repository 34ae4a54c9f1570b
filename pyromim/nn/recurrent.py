"""Recurrent networks over token sequences: a conditional language model and an encoder.

Token sequences are integer tensors of a fixed maximum length ``L``. A sequence
holds its tokens, then ``<eos>``, then ``<pad>`` up to ``L``; a sequence that
fills all ``L`` positions without ``<eos>`` is a sentence truncated at ``L``.
The special ids are configurable (defaults ``pad=0, bos=1, eos=2``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from pyromim.nn.batching import over_leading_dims
from pyromim.nn.context import broadcast_context

#: Recurrent cells by name (``cell`` of :class:`GRULanguageModel` and :class:`SequenceEncoder`).
RNN_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


def _rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool = False) -> nn.RNNBase:
    if cell not in RNN_CELLS:
        raise ValueError(f"unknown recurrent cell {cell!r}; choose one of {sorted(RNN_CELLS)}")
    return RNN_CELLS[cell](input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)


def _check_special_ids(vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> None:
    ids = (pad_id, bos_id, eos_id)
    if len(set(ids)) != 3 or not all(0 <= i < vocab_size for i in ids):
        raise ValueError(f"pad_id, bos_id, eos_id must be three different ids in 0..{vocab_size - 1}, got {ids}")


class GRULanguageModel(PyroModule):
    """Recurrent language model ``p(w_t | w_<t, z)`` over a vocabulary of ``V`` ids.

    The context ``z`` sets the initial hidden state (``tanh(A z + a)`` for every
    layer; for an LSTM the cell state starts at zero) and, with
    ``context_every_step``, is concatenated to the token embedding at every
    step. The first input is ``<bos>``; step ``t`` reads token ``t - 1``.
    The logits of ``<pad>`` and ``<bos>`` are ``-inf``: they are never
    generated, so the conditionals are normalised over the tokens a sequence
    can hold.

    :param vocab_size: ``V``, including the special ids.
    :param context_dim: size of ``z``.
    :param embedding_dim: token embedding size.
    :param hidden_size: recurrent state size.
    :param num_layers: stacked recurrent layers.
    :param cell: ``"gru"`` or ``"lstm"``.
    :param context_every_step: also feed ``z`` at every step.
    :param pad_id: the ``<pad>`` id; ``bos_id``, ``eos_id`` likewise.
    """

    def __init__(
        self,
        vocab_size: int,
        context_dim: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "gru",
        context_every_step: bool = True,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> None:
        super().__init__()
        _check_special_ids(vocab_size, pad_id, bos_id, eos_id)
        self.vocab_size = int(vocab_size)
        self.context_dim = int(context_dim)
        self.pad_id, self.bos_id, self.eos_id = int(pad_id), int(bos_id), int(eos_id)
        self.cell = cell
        self.num_layers = int(num_layers)
        self.hidden_size = int(hidden_size)
        self.context_every_step = bool(context_every_step)
        self.embedding = nn.Embedding(self.vocab_size, int(embedding_dim))
        step_in = int(embedding_dim) + (self.context_dim if self.context_every_step else 0)
        self.rnn = _rnn(cell, step_in, self.hidden_size, self.num_layers)
        self.init_state = nn.Linear(self.context_dim, self.num_layers * self.hidden_size)
        self.output = nn.Linear(self.hidden_size, self.vocab_size)
        never = torch.zeros(self.vocab_size)
        never[[self.pad_id, self.bos_id]] = float("-inf")
        self.register_buffer("never_generated", never)

    def initial_state(self, context: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The recurrent state before ``<bos>`` for a flat ``(N, context_dim)`` context."""
        h0 = torch.tanh(self.init_state(context)).unflatten(-1, (self.num_layers, self.hidden_size))
        h0 = h0.transpose(0, 1).contiguous()
        return (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0

    def _inputs(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(tokens)
        if self.context_every_step:
            emb = torch.cat([emb, context[:, None, :].expand(-1, tokens.shape[1], -1)], -1)
        return emb

    def step(
        self,
        tokens: torch.Tensor,
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        context: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """One step for a flat batch: ``(N,)`` previous tokens and state -> ``(N, V)`` logits, new state."""
        out, state = self.rnn(self._inputs(tokens[:, None], context), state)
        return self.output(out[:, 0]) + self.never_generated, state

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: ``tokens`` ``batch + (L,)`` -> ``batch + (L, V)``.

        The logits at position ``t`` are those of ``p(w_t | w_<t, z)``: the
        inputs are ``<bos>, w_0, ..., w_{L-2}``, one pass of the recurrent layer.
        """
        tokens, context, lead = broadcast_context(tokens, 1, context)
        bos = torch.full_like(tokens[:, :1], self.bos_id)
        inputs = torch.cat([bos, tokens[:, :-1]], 1)
        out, _ = self.rnn(self._inputs(inputs, context), self.initial_state(context))
        logits = self.output(out) + self.never_generated
        return logits.reshape(lead + logits.shape[1:])


class SequenceEncoder(PyroModule):
    """Token sequence -> fixed-size vector: embedding, (bi-directional) GRU/LSTM, linear map.

    The recurrent layer reads each sequence up to its length (the tokens before
    the first ``<pad>``, ``<eos>`` included) through ``pack_padded_sequence``,
    so padding never changes the result; the final hidden states of the last
    layer (both directions when ``bidirectional``) go through
    ``Linear -> tanh`` to ``out_features``. Leading batch dims pass through.

    :param vocab_size: ``V``, including the special ids.
    :param out_features: size of the output vector.
    :param embedding_dim: token embedding size.
    :param hidden_size: recurrent state size (per direction).
    :param num_layers: stacked recurrent layers.
    :param bidirectional: read the sequence both ways.
    :param cell: ``"gru"`` or ``"lstm"``.
    :param pad_id: the ``<pad>`` id.
    """

    def __init__(
        self,
        vocab_size: int,
        out_features: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        cell: str = "gru",
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.embedding = nn.Embedding(self.vocab_size, int(embedding_dim), padding_idx=self.pad_id)
        self.rnn = _rnn(cell, int(embedding_dim), int(hidden_size), int(num_layers), bidirectional)
        self.directions = 2 if bidirectional else 1
        self.project = nn.Sequential(nn.Linear(self.directions * int(hidden_size), int(out_features)), nn.Tanh())

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(
                f"SequenceEncoder: token ids must lie in 0..{self.vocab_size - 1}, got {tokens.min().item()}..{tokens.max().item()}"
            )
        lengths = (tokens != self.pad_id).sum(-1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state
        last = h[-self.directions :].transpose(0, 1).flatten(1)
        return self.project(last)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``batch + (L,)`` token ids -> ``batch + (out_features,)``."""
        return over_leading_dims(self._encode, tokens, 1)
