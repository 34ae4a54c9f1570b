"""Per-step cost of each objective with the catalogue's autoregressive decoders, as ratios to the ELBO.

    PYTHONPATH=. python benchmarks/bench_strong_decoders.py [--specs digits_made sentences_gru] [--batch 128]

For each spec (``digits_made``, ``digits_pixelcnn``, ``sentences_gru`` by default)
one ``SVI`` step is timed with ``Trace_ELBO``, A-MIM, symmetric ``Trace_MIM`` and
``JitTrace_MIM`` on a batch of its built-in data, after warm-up steps; the median
of ``--rounds`` rounds of ``--steps`` steps is reported with its ratio to the
ELBO's step, all measured in one run (machines are shared and noisy: compare
ratios, not times). Symmetric MIM draws a sample of ``p(x|z)`` at every step, so
its cost is the decoder's draw against its teacher-forced pass (see
``bench_autoregressive.py``) on top of the extra passes of the decoder side.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from pyromim import JitTrace_MIM, Trace_MIM, build_model
from pyromim.data import load_data

OBJECTIVES = {
    "ELBO": Trace_ELBO,
    "A-MIM": lambda: Trace_MIM(symmetric=False),
    "MIM": Trace_MIM,
    "MIM (compiled)": JitTrace_MIM,
}


def step_time(spec: str, make_loss, x: torch.Tensor, steps: int, rounds: int) -> float:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = build_model(spec)
    svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-3}), loss=make_loss())
    for _ in range(3):
        svi.step(x)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            svi.step(x)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--specs", nargs="+", default=["digits_made", "digits_pixelcnn", "sentences_gru"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'spec':18} {'objective':16} {'ms/step':>9} {'x ELBO':>7}")
    for spec in args.specs:
        model = build_model(spec)
        data = load_data(model.spec.data.dataset, seed=0).train.x[: args.batch]
        x = data.reshape((len(data), *model.spec.data.shape))
        elbo = None
        for name, make_loss in OBJECTIVES.items():
            seconds = step_time(spec, make_loss, x, args.steps, args.rounds)
            elbo = elbo or seconds
            print(f"{spec:18} {name:16} {seconds * 1e3:9.1f} {seconds / elbo:7.2f}", flush=True)


if __name__ == "__main__":
    main()
