"""Step time of Trace_MIM (asymmetric, symmetric, compiled) relative to Trace_ELBO
and to hand-written PyTorch.

All Pyro losses train the catalogue's ``digits_normal`` model (8-D latent,
MLP encoder 64-128-2x8 and Bernoulli decoder 8-128-64, tanh) on a batch of
binarised digits in one run, in alternating blocks so machine noise hits
them alike. Two hand-written PyTorch steps of the same networks (plain
``torch.nn`` and ``torch.distributions``, one Adam) give the physical limit:

* ``torch ELBO``: encode, decode (2 network passes);
* ``torch MIM``: the symmetric MIM loss with the one-sample ``log q(x)``
  (encode and decode the data; decode a prior draw, encode the generated
  data, decode the re-encoded draw: 5 network passes), the same sum as
  ``Trace_MIM()``.

Before timing, the hand-written losses are checked equal to ``Trace_ELBO``'s
and ``Trace_MIM()``'s values for the same weights and random seed (they draw
in the same order), so the rows compare the same computation.

The report gives each loss's median step time as a ratio to Trace_ELBO's
and to the hand-written ELBO's. One thread by default (``--threads``). Steps
are timed in CPU time of the calling thread by default (``--clock cpu``),
which other processes on a shared machine disturb far less than wall time
(``--clock wall``); with one thread the step's work all runs in that thread.

    python benchmarks/bench_trace_mim.py [--steps 20] [--rounds 5] [--batch 128] [--threads 1] [--clock cpu]
"""

import argparse
import statistics
import time

import pyro
import torch
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
from sklearn.datasets import load_digits
from torch import distributions as td
from torch import nn

from pyromim import JitTrace_MIM, Trace_MIM, build_model

MIN_SCALE = 0.049787068367863944  # the spec's floor, exp(-3)


class HandWritten(nn.Module):
    """The digits_normal networks in plain PyTorch, with the ELBO and symmetric MIM losses."""

    def __init__(self, data_dim=64, hidden=128, latent=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))
        self.latent = latent

    def q(self, x):
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        return td.Independent(td.Normal(loc, raw.exp() + MIN_SCALE, validate_args=False), 1)

    def p_x(self, z):
        return td.Independent(td.Bernoulli(logits=self.decoder(z), validate_args=False), 1)

    def p_z(self, x):
        zeros = x.new_zeros(x.shape[0], self.latent)
        return td.Independent(td.Normal(zeros, zeros + 1.0, validate_args=False), 1)

    def elbo_loss(self, x):
        q = self.q(x)
        z = q.rsample()
        return -(self.p_x(z).log_prob(x) + self.p_z(x).log_prob(z) - q.log_prob(z)).sum()

    def mim_loss(self, x):
        """1/2 (E_enc l + E_dec l), l = -1/2 [log p(x,z) + log q(z|x) + log q(x)], beta = 1,
        log q(x) ~= log p(x, z') - log q(z'|x) (at z' = z on the encoder side)."""
        prior = self.p_z(x)
        z = self.q(x).rsample()
        enc = -(self.p_x(z).log_prob(x) + prior.log_prob(z))  # -1/2 (1 + beta) log p(x, z)
        z_gen = prior.rsample()
        x_gen = self.p_x(z_gen)
        x_gen_sample = x_gen.sample()
        q_gen = self.q(x_gen_sample)
        z_re = q_gen.rsample()
        log_qx = self.p_x(z_re).log_prob(x_gen_sample) + prior.log_prob(z_re) - q_gen.log_prob(z_re)
        dec = -0.5 * (x_gen.log_prob(x_gen_sample) + prior.log_prob(z_gen) + q_gen.log_prob(z_gen) + log_qx)
        return 0.5 * (enc.sum() + dec.sum())


def hand_written_step(loss_name):
    net = HandWritten()
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = getattr(net, loss_name)

    def step(x):
        optim.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        optim.step()

    return step


def check_hand_written(x):
    """The hand-written losses equal Pyro's for the same weights and seed (relative 1e-5)."""
    pyro.clear_param_store()
    vae = build_model("digits_normal")
    hand = HandWritten()
    with torch.no_grad():
        for net, name in ((hand.encoder, "encoder"), (hand.decoder, "decoder")):
            ours = [p for n, p in vae.named_parameters() if n.startswith(name + ".")]
            for mine, theirs in zip(net.parameters(), ours, strict=True):
                mine.copy_(theirs)
        for loss, fn in ((Trace_ELBO(), hand.elbo_loss), (Trace_MIM(), hand.mim_loss)):
            torch.manual_seed(1)
            expected = loss.loss(vae.model, vae.guide, x)
            torch.manual_seed(1)
            got = fn(x).item()
            if abs(got - expected) > 1e-5 * abs(expected):
                raise AssertionError(f"hand-written {fn.__name__} = {got}, {type(loss).__name__} = {expected}")


def svi_step(make):
    def build():
        pyro.clear_param_store()
        vae = build_model("digits_normal")
        return SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=make()).step

    return build


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per loss")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU time of this thread, or wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    x = torch.tensor(load_digits().data[: args.batch] > 7, dtype=torch.float32)
    check_hand_written(x)
    torch.manual_seed(0)
    steps = {
        "torch ELBO": lambda: hand_written_step("elbo_loss"),
        "torch MIM": lambda: hand_written_step("mim_loss"),
        "Trace_ELBO": svi_step(Trace_ELBO),
        "JitTrace_ELBO": svi_step(JitTrace_ELBO),
        "A-MIM": svi_step(lambda: Trace_MIM(symmetric=False)),
        "MIM": svi_step(Trace_MIM),
        "MIM score": svi_step(lambda: Trace_MIM(decoder_gradient="score")),
        "JitTrace_MIM A-MIM": svi_step(lambda: JitTrace_MIM(symmetric=False)),
        "JitTrace_MIM": svi_step(JitTrace_MIM),
    }
    # Pyro's param store is global, so each loss trains its own fresh model in
    # its own block; blocks of all losses alternate for --rounds rounds so that
    # machine noise hits every loss alike. Warm-up steps (and compilation) are
    # not timed.
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, build in steps.items():
            step = build()
            for _ in range(3):
                step(x)
            for _ in range(args.steps):
                start = clock()
                step(x)
                times[name].append(clock() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"median step time ({args.clock} clock), batch {args.batch}, {args.threads} thread(s), "
        f"{args.rounds} rounds of {args.steps} steps"
    )
    print(f"  {'':20s} {'ms':>6s} {'/ torch ELBO':>13s} {'/ Trace_ELBO':>13s}")
    for name, median in medians.items():
        print(
            f"  {name:20s} {median * 1e3:6.2f} {median / medians['torch ELBO']:12.2f}x "
            f"{median / medians['Trace_ELBO']:12.2f}x"
        )


if __name__ == "__main__":
    main()
