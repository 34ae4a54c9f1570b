"""Pyro's deep Markov model (``examples/dmm.py``), small, adapted only in its data source, trained with ``Trace_MIM``.

The networks keep the structure of Pyro's example (``Emitter``,
``GatedTransition``, ``Combiner``, a guide RNN run over the sequences in
reverse), and so do the model and guide signatures
``(mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths,
annealing_factor)``. The model observes ``mini_batch[:, t - 1, :]`` at site
``obs_x_t`` for every time step: *slices* of the guide's argument
``mini_batch``, which ``Trace_MIM`` routes generated notes back into. The
guide's RNN, though, reads ``mini_batch_reversed``, a reversed and packed copy
the caller made, which no routing can know about: ``guide_inputs`` rebuilds it
from the generated sequences (:func:`reversed_inputs`, 8 lines), as for any
guide that reads data through the caller's own copy.

Data: instead of polyphonic music, binary "piano rolls" of 8 notes and 6-12
steps drawn from a small Markov chain of chords (:func:`sequences`); the
helpers that sort, reverse, mask and pack a minibatch follow Pyro's
``polyphonic_data_loader``.

    python examples/pyro_programs/dmm.py             # ELBO and MIM
    python examples/pyro_programs/dmm.py --steps 100 # quick mode: 24 s

The full run (500 steps each) was not timed; the quick mode's 24 s was measured
with ``OMP_NUM_THREADS=1`` on 2 CPU cores shared with other work (load average about 5).
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from _shared import minibatches, train
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import nn

from pyromim import Trace_MIM

NOTES = 8  # 88 piano keys in Pyro's example


class Emitter(nn.Module):
    """p(x_t | z_t)."""

    def __init__(self, input_dim, z_dim, emission_dim):
        super().__init__()
        self.lin_z_to_hidden = nn.Linear(z_dim, emission_dim)
        self.lin_hidden_to_hidden = nn.Linear(emission_dim, emission_dim)
        self.lin_hidden_to_input = nn.Linear(emission_dim, input_dim)
        self.relu = nn.ReLU()

    def forward(self, z_t):
        h1 = self.relu(self.lin_z_to_hidden(z_t))
        h2 = self.relu(self.lin_hidden_to_hidden(h1))
        return torch.sigmoid(self.lin_hidden_to_input(h2))


class GatedTransition(nn.Module):
    """p(z_t | z_{t-1}): a gated mix of a linear and a non-linear proposed mean."""

    def __init__(self, z_dim, transition_dim):
        super().__init__()
        self.lin_gate_z_to_hidden = nn.Linear(z_dim, transition_dim)
        self.lin_gate_hidden_to_z = nn.Linear(transition_dim, z_dim)
        self.lin_proposed_mean_z_to_hidden = nn.Linear(z_dim, transition_dim)
        self.lin_proposed_mean_hidden_to_z = nn.Linear(transition_dim, z_dim)
        self.lin_sig = nn.Linear(z_dim, z_dim)
        self.lin_z_to_loc = nn.Linear(z_dim, z_dim)
        self.lin_z_to_loc.weight.data = torch.eye(z_dim)
        self.lin_z_to_loc.bias.data = torch.zeros(z_dim)
        self.relu = nn.ReLU()
        self.softplus = nn.Softplus()

    def forward(self, z_t_1):
        gate = torch.sigmoid(self.lin_gate_hidden_to_z(self.relu(self.lin_gate_z_to_hidden(z_t_1))))
        proposed_mean = self.lin_proposed_mean_hidden_to_z(self.relu(self.lin_proposed_mean_z_to_hidden(z_t_1)))
        loc = (1 - gate) * self.lin_z_to_loc(z_t_1) + gate * proposed_mean
        scale = self.softplus(self.lin_sig(self.relu(proposed_mean)))
        return loc, scale


class Combiner(nn.Module):
    """q(z_t | z_{t-1}, x_{t:T}) from the previous latent and the RNN state."""

    def __init__(self, z_dim, rnn_dim):
        super().__init__()
        self.lin_z_to_hidden = nn.Linear(z_dim, rnn_dim)
        self.lin_hidden_to_loc = nn.Linear(rnn_dim, z_dim)
        self.lin_hidden_to_scale = nn.Linear(rnn_dim, z_dim)
        self.tanh = nn.Tanh()
        self.softplus = nn.Softplus()

    def forward(self, z_t_1, h_rnn):
        h_combined = 0.5 * (self.tanh(self.lin_z_to_hidden(z_t_1)) + h_rnn)
        return self.lin_hidden_to_loc(h_combined), self.softplus(self.lin_hidden_to_scale(h_combined))


class DMM(nn.Module):
    def __init__(self, input_dim=NOTES, z_dim=4, emission_dim=16, transition_dim=16, rnn_dim=16):
        super().__init__()
        self.emitter = Emitter(input_dim, z_dim, emission_dim)
        self.trans = GatedTransition(z_dim, transition_dim)
        self.combiner = Combiner(z_dim, rnn_dim)
        self.rnn = nn.RNN(input_size=input_dim, hidden_size=rnn_dim, nonlinearity="relu", batch_first=True)
        self.z_0 = nn.Parameter(torch.zeros(z_dim))
        self.z_q_0 = nn.Parameter(torch.zeros(z_dim))
        self.h_0 = nn.Parameter(torch.zeros(1, 1, rnn_dim))

    def model(self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths, annealing_factor=1.0):
        T_max = mini_batch.size(1)
        pyro.module("dmm", self)
        z_prev = self.z_0.expand(mini_batch.size(0), self.z_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, T_max + 1)):
                z_loc, z_scale = self.trans(z_prev)
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(
                        f"z_{t}", dist.Normal(z_loc, z_scale).mask(mini_batch_mask[:, t - 1 : t]).to_event(1)
                    )
                emission_probs_t = self.emitter(z_t)
                pyro.sample(
                    f"obs_x_{t}",
                    dist.Bernoulli(emission_probs_t).mask(mini_batch_mask[:, t - 1 : t]).to_event(1),
                    obs=mini_batch[:, t - 1, :],
                )
                z_prev = z_t

    def guide(self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths, annealing_factor=1.0):
        T_max = mini_batch.size(1)
        pyro.module("dmm", self)
        h_0_contig = self.h_0.expand(1, mini_batch.size(0), self.rnn.hidden_size).contiguous()
        rnn_output, _ = self.rnn(mini_batch_reversed, h_0_contig)
        rnn_output = pad_and_reverse(rnn_output, mini_batch_seq_lengths)
        z_prev = self.z_q_0.expand(mini_batch.size(0), self.z_q_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, T_max + 1)):
                z_loc, z_scale = self.combiner(z_prev, rnn_output[:, t - 1, :])
                with pyro.poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(
                        f"z_{t}", dist.Normal(z_loc, z_scale).mask(mini_batch_mask[:, t - 1 : t]).to_event(1)
                    )
                z_prev = z_t


# ----------------------------------------------------------------------------- minibatches
def reverse_sequences(mini_batch, seq_lengths):
    """Each sequence's first ``T`` steps in reverse order, padding left in place."""
    reversed_mini_batch = torch.zeros_like(mini_batch)
    for b, T in enumerate(seq_lengths.tolist()):
        reversed_mini_batch[b, :T] = mini_batch[b, :T].flip(0)
    return reversed_mini_batch


def pad_and_reverse(rnn_output, seq_lengths):
    rnn_output, _ = nn.utils.rnn.pad_packed_sequence(rnn_output, batch_first=True)
    return reverse_sequences(rnn_output, seq_lengths)


def get_mini_batch(indices, sequences, seq_lengths):
    """Pyro's ``get_mini_batch``: sorted by length, with the reversed packed copy and the mask."""
    lengths = seq_lengths[indices]
    order = torch.argsort(lengths, descending=True)
    lengths, indices = lengths[order], indices[order]
    mini_batch = sequences[indices, : int(lengths.max())]
    mask = (torch.arange(mini_batch.size(1)) < lengths[:, None]).float()
    packed = nn.utils.rnn.pack_padded_sequence(reverse_sequences(mini_batch, lengths), lengths, batch_first=True)
    return mini_batch, packed, mask, lengths


def reversed_inputs(generated, args, kwargs):
    """``guide_inputs`` for the DMM: generated notes in ``mini_batch`` and in its reversed packed copy."""
    mini_batch, _, mask, lengths, *rest = args
    steps = [generated[f"obs_x_{t}"] for t in range(1, mini_batch.size(1) + 1)]
    new_batch = torch.stack(steps, -2)
    packed = nn.utils.rnn.pack_padded_sequence(reverse_sequences(new_batch, lengths), lengths, batch_first=True)
    return (new_batch, packed, mask, lengths, *rest), kwargs


def sequences(n=200, max_len=12, seed=0):
    """``(n, max_len, NOTES)`` binary piano rolls from a Markov chain over 4 chords, and their lengths."""
    g = torch.Generator().manual_seed(seed)
    chords = (torch.rand(4, NOTES, generator=g) < 0.35).float()
    stay = 0.7
    lengths = torch.randint(max_len // 2, max_len + 1, (n,), generator=g)
    state = torch.randint(0, 4, (n,), generator=g)
    rolls = torch.zeros(n, max_len, NOTES)
    for t in range(max_len):
        move = torch.rand(n, generator=g) > stay
        state = torch.where(move, (state + 1) % 4, state)
        flips = (torch.rand(n, NOTES, generator=g) < 0.05).float()
        rolls[:, t] = (chords[state] + flips) % 2
    rolls *= (torch.arange(max_len) < lengths[:, None]).float()[..., None]
    return rolls, lengths


def fit(loss, steps, seed=0, batch_size=20, lr=3e-3):
    """Train the small DMM with ``loss``; the DMM and per-sequence losses."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    dmm = DMM()
    rolls, lengths = sequences(seed=seed)
    batches = (get_mini_batch(idx, rolls, lengths) for idx in minibatches(len(rolls), batch_size, steps, seed))
    return dmm, train(dmm.model, dmm.guide, loss, batches, lr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    for name, loss in (("Trace_ELBO", Trace_ELBO()), ("Trace_MIM", Trace_MIM(guide_inputs=reversed_inputs))):
        _, losses = fit(loss, args.steps)
        print(f"{name}: loss per sequence {losses[0]:.1f} -> {sum(losses[-20:]) / 20:.1f} (mean of the last 20 steps)")


if __name__ == "__main__":
    main()
