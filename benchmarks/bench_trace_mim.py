"""Step time of Trace_MIM (asymmetric, symmetric, compiled) relative to Trace_ELBO.

All losses train the catalogue's ``digits_normal`` model (8-D latent, MLP
encoder and Bernoulli decoder) on a batch of binarised digits in one
run, in alternating blocks so machine noise hits them alike; the report
gives each loss's median step time as a ratio to Trace_ELBO's.

    python benchmarks/bench_trace_mim.py [--steps 20] [--rounds 5] [--batch 128]
"""

import argparse
import statistics
import time

import pyro
import torch
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
from sklearn.datasets import load_digits

from pyromim import JitTrace_MIM, Trace_MIM, build_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per loss")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.tensor(load_digits().data[: args.batch] > 7, dtype=torch.float32)
    losses = {
        "Trace_ELBO": Trace_ELBO,
        "JitTrace_ELBO": JitTrace_ELBO,
        "A-MIM": lambda: Trace_MIM(symmetric=False),
        "MIM": Trace_MIM,
        "MIM score": lambda: Trace_MIM(decoder_gradient="score"),
        "JitTrace_MIM": JitTrace_MIM,
    }
    # Pyro's param store is global, so each loss trains its own fresh model in
    # its own block; blocks of all losses alternate for --rounds rounds so that
    # machine noise hits every loss alike. Warm-up steps (and compilation) are
    # not timed.
    times = {name: [] for name in losses}
    for _ in range(args.rounds):
        for name, make in losses.items():
            pyro.clear_param_store()
            vae = build_model("digits_normal")
            svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=make())
            for _ in range(3):
                svi.step(x)
            for _ in range(args.steps):
                start = time.perf_counter()
                svi.step(x)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["Trace_ELBO"])
    print(
        f"median step time relative to Trace_ELBO ({base * 1e3:.2f} ms), batch {args.batch}, "
        f"{args.rounds} rounds of {args.steps} steps"
    )
    for name, values in times.items():
        print(f"  {name:14s} {statistics.median(values) / base:5.2f}x")


if __name__ == "__main__":
    main()
