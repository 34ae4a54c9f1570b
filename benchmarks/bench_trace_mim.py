"""Step time of Trace_MIM (asymmetric, symmetric, compiled) relative to Trace_ELBO.

All losses train the same small MLP VAE on a batch of binarised digits in one
run, interleaved round by round so machine noise hits them alike; the report
gives each loss's median step time as a ratio to Trace_ELBO's.

    python benchmarks/bench_trace_mim.py [--steps 60] [--batch 128]
"""

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from sklearn.datasets import load_digits

from pyromim import JitTrace_MIM, Trace_MIM


class VAE(PyroModule):
    def __init__(self, d=64, k=8, h=128):
        super().__init__()
        self.k = k
        # every submodule a PyroModule, so the compiled losses see the weights as params
        self.enc = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, 2 * k))
        self.dec = torch.nn.Sequential(torch.nn.Linear(k, h), torch.nn.Tanh(), torch.nn.Linear(h, d))
        to_pyro_module_(self.enc)
        to_pyro_module_(self.dec)

    def model(self, x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.k), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.dec(z)).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[-2]):
            loc, log_scale = self.enc(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.clamp_min(-3).exp()).to_event(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.tensor(load_digits().data[: args.batch] > 7, dtype=torch.float32)
    losses = {
        "Trace_ELBO": Trace_ELBO,
        "JitTrace_ELBO": JitTrace_ELBO,
        "A-MIM": lambda: Trace_MIM(symmetric=False),
        "MIM": Trace_MIM,
        "MIM detach": lambda: Trace_MIM(decoder_gradient="detach"),
        "JitTrace_MIM": JitTrace_MIM,
    }
    svis = {}
    for name, make in losses.items():
        pyro.clear_param_store()
        vae = VAE()
        svis[name] = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=make())
        for _ in range(3):  # warm-up and compilation
            svis[name].step(x)
    times = {name: [] for name in losses}
    for _ in range(args.steps):
        for name, svi in svis.items():
            start = time.perf_counter()
            svi.step(x)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["Trace_ELBO"])
    print(f"median step time relative to Trace_ELBO ({base * 1e3:.2f} ms), batch {args.batch}, {args.steps} steps")
    for name, values in times.items():
        print(f"  {name:14s} {statistics.median(values) / base:5.2f}x")


if __name__ == "__main__":
    main()
