"""Vectorised, chunked ``log_likelihood`` against a per-datum loop, and its peak memory.

Two Bernoulli VAEs with random MLP weights: a 784-pixel one (20-D latent,
200 hidden units), where the arithmetic dominates, and a 16-pixel one (2-D
latent, 50 hidden units, toy-sized), where the per-call overhead of running
Pyro traces dominates.  The loop baseline computes the same estimator one datum
at a time (its importance samples still vectorised), with the same PSIS
diagnostic per datum.  Peak memory is the high-water mark of the resident set while
``log_likelihood`` runs, measured in a fresh process per memory budget.

    PYTHONPATH=. python benchmarks/bench_log_likelihood.py [N] [S]
"""

import math
import subprocess
import sys
import time

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyromim.metrics import log_likelihood
from pyromim.metrics.likelihood import pareto_k
from pyromim.metrics.per_datum import log_weights
from pyromim.metrics.trace_layout import inspect_layout

PIXELS, LATENT, HIDDEN = 784, 20, 200


class BernoulliVAE(nn.Module):
    def __init__(self, pixels: int = PIXELS, latent: int = LATENT, hidden: int = HIDDEN) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.pixels, self.latent = pixels, latent
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, pixels))
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.latent), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        loc, log_scale = self.encoder(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def data(n: int, pixels: int = PIXELS) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, pixels), 0.3))


def per_datum_loop(vae: BernoulliVAE, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    layout = inspect_layout(vae.model, vae.guide, x)
    out = []
    for i in range(len(x)):
        log_w = log_weights(vae.model, vae.guide, x[i : i + 1], num_samples, layout).T.double()
        pareto_k(log_w.numpy())
        out.append(torch.logsumexp(log_w, -1) - math.log(num_samples))
    return torch.cat(out)


def per_datum_per_sample_loop(vae: BernoulliVAE, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The textbook double loop: one guide trace and one replayed model trace per sample."""
    layout = inspect_layout(vae.model, vae.guide, x)
    out = []
    for i in range(len(x)):
        log_w = torch.cat(
            [log_weights(vae.model, vae.guide, x[i : i + 1], 1, layout) for _ in range(num_samples)]
        ).T.double()
        pareto_k(log_w.numpy())
        out.append(torch.logsumexp(log_w, -1) - math.log(num_samples))
    return torch.cat(out)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_child(n: int, num_samples: int, budget: int) -> None:
    """Run in a fresh process: print the resident-set growth while log_likelihood runs."""
    pyro.set_rng_seed(0)
    vae, x = BernoulliVAE(), data(n)
    log_likelihood(vae.model, vae.guide, x[:2], 2)  # imports and first-call allocations
    before = rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the high-water mark
    log_likelihood(vae.model, vae.guide, x, num_samples, memory_budget=budget)
    print(rss_kib("VmHWM") - before)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    s = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    for pixels, latent, hidden in ((PIXELS, LATENT, HIDDEN), (16, 2, 50)):
        pyro.set_rng_seed(0)
        vae, x = BernoulliVAE(pixels, latent, hidden), data(n, pixels)
        log_likelihood(vae.model, vae.guide, x[:4], 8)  # warm-up: imports, first allocations
        t_vec, result = timed(lambda: log_likelihood(vae.model, vae.guide, x, s))
        t_loop, looped = timed(lambda: per_datum_loop(vae, x, s))
        few = max(1, n // 20)
        t_double, _ = timed(lambda: per_datum_per_sample_loop(vae, x[:few], s))
        t_double *= n / few
        print(
            f"log_likelihood: {pixels}-pixel Bernoulli VAE ({latent}-D latent), N={n}, S={s}, "
            f"torch threads {torch.get_num_threads()}"
        )
        print(f"  per-datum, per-sample loop : {t_double:7.2f} s   (timed on {few} data, scaled to N)")
        print(f"  per-datum loop, samples vectorised : {t_loop:7.2f} s   NLL {-looped.mean().item():.2f} nats")
        print(
            f"  log_likelihood, data and samples vectorised : {t_vec:7.2f} s   "
            f"NLL {result.nll:.2f} nats (k>0.7 fraction {result.khat_bad_fraction:.2f})"
        )
        print(f"  speed-up over the per-datum, per-sample loop : {t_double / t_vec:.1f}x")
        print(f"  speed-up over the per-datum loop             : {t_loop / t_vec:.1f}x")
    pairs = n * s
    print(
        f"peak resident-set growth, N={n} x S={s} = {pairs} pairs "
        f"(unchunked logits alone: {pairs * PIXELS * 4 / 2**20:.0f} MiB):"
    )
    for budget_mib in (16, 64, 256, 1024):
        out = subprocess.run(
            [sys.executable, __file__, "--peak", str(n), str(s), str(budget_mib * 2**20)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"  memory_budget {budget_mib:5d} MiB -> peak +{int(out.stdout) / 1024:7.1f} MiB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peak"]:
        peak_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
