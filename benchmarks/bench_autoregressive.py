"""Cost of an ancestral ``sample()`` against a teacher-forced ``log_prob()`` per autoregressive family.

One run measures, for a batch of 128 contexts ``z`` (16-D):

* sentences: :class:`~pyromim.nn.GRULanguageModel` (vocabulary 243, embedding
  64, hidden 128), length 16; the network's weights are random, so almost no
  draw ends early and every draw runs all 16 steps (the worst case);
* images: :class:`~pyromim.nn.GatedPixelCNN` over binary 8x8 images (32
  channels, 4 gated layers);
* flat vectors: :class:`~pyromim.nn.MADE` over 64 binary values (hidden 128, 128);

the best of several timings of ``log_prob`` (no gradient), ``log_prob`` with its
backward pass (the training cost) and ``sample()``, and prints the ratio
``sample / log_prob``. It runs on one CPU thread by default (comparable from
machine to machine on a shared host); ``--threads`` changes that, and
``--device cuda`` runs it on a GPU (each timing then waits for the device).

    PYTHONPATH=. python benchmarks/bench_autoregressive.py [--batch 128] [--repeats 20] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from pyromim.distributions import MADEDistribution, PixelCNNDistribution, TokenSequenceDistribution
from pyromim.nn import MADE, GatedPixelCNN, GRULanguageModel

Z_DIM = 16


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    def timed() -> float:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()  # warm-up
    return min(timed() for _ in range(repeats))


def families(batch: int, device: torch.device) -> dict[str, tuple[torch.distributions.Distribution, torch.nn.Module]]:
    z = torch.randn(batch, Z_DIM, device=device)
    lm = GRULanguageModel(243, Z_DIM, embedding_dim=64, hidden_size=128).to(device)
    pixel = GatedPixelCNN((8, 8), Z_DIM, channels=32, num_layers=4).to(device)
    made = MADE(64, Z_DIM, hidden=(128, 128)).to(device)
    return {
        "GRU sentences, L=16": (TokenSequenceDistribution(lm, z, 16), lm),
        "PixelCNN 8x8 binary": (PixelCNNDistribution(pixel, z), pixel),
        "MADE 64 binary": (MADEDistribution(made, z), made),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    where = f"{args.threads} CPU thread(s)" if device.type == "cpu" else str(device)
    print(f"batch {args.batch}, {where}, best of {args.repeats}; times in ms")
    print(f"{'family':<22} {'log_prob':>9} {'+backward':>10} {'sample':>9} {'sample/log_prob':>16}")
    for name, (dist, net) in families(args.batch, device).items():
        x = dist.sample()

        def forward_only(dist=dist, x=x):
            with torch.no_grad():
                return dist.log_prob(x)

        def with_backward(dist=dist, x=x, net=net):
            net.zero_grad()
            dist.log_prob(x).sum().backward()

        t_lp = best_seconds(forward_only, args.repeats, device)
        t_bw = best_seconds(with_backward, args.repeats, device)
        t_s = best_seconds(dist.sample, max(3, args.repeats // 4), device)
        print(f"{name:<22} {1e3 * t_lp:9.2f} {1e3 * t_bw:10.2f} {1e3 * t_s:9.2f} {t_s / t_lp:16.1f}")


if __name__ == "__main__":
    main()
