"""Tutorial: what the representation metrics and the ArviZ diagnostics say, checked against exact values.

A linear-Gaussian model, where everything has a closed form:

    z ~ N(0, 1),   x | z ~ N(w z, s^2),   so  p(x) = N(0, w^2 + s^2),  p(z | x) = N(m x, v)

with guides ``q(z | x) = N(m x, (c sqrt(v))^2)`` whose width is ``c`` times
the exact posterior's. Part 1 estimates the NLL with importance sampling and
reads PSIS k-hat; part 2 looks at the guide's draws with ArviZ; part 3 measures
the encoder's mutual information with KSG and the aggregate posterior, and
shows where each of them fails (a sharp encoder, few points, uninformative columns).

    python docs/tutorials/metrics_and_diagnostics.py                            # about a minute
    PYROMIM_TUTORIAL_FAST=1 python docs/tutorials/metrics_and_diagnostics.py    # seconds
"""

# [setup]
import math
import os

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch

from pyromim.metrics import ksg_mutual_information, log_likelihood, mutual_information, to_inference_data

FAST = os.environ.get("PYROMIM_TUTORIAL_FAST") == "1"  # the test suite's smoke mode
N, NUM_SAMPLES = (200, 20) if FAST else (1000, 200)
w, s = 2.0, 0.5
v = 1.0 / (1.0 + w**2 / s**2)  # exact posterior variance
m = v * w / s**2  # exact posterior mean is m * x


def model(x):
    with pyro.plate("data", x.shape[-2]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
        pyro.sample("x", dist.Normal(w * z, s).to_event(1), obs=x)


def make_guide(c):
    """The exact posterior's mean with ``c`` times its standard deviation."""

    def guide(x):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal(m * x[..., :1], c * math.sqrt(v)).to_event(1))  # column 0 only

    return guide


pyro.set_rng_seed(0)
x = dist.Normal(0.0, math.sqrt(w**2 + s**2)).sample([N, 1])  # data from the model itself
exact_nll = -dist.Normal(0.0, math.sqrt(w**2 + s**2)).log_prob(x).mean().item()
# [/setup]

# [psis]
print(f"Part 1: NLL by importance sampling ({NUM_SAMPLES} draws per point); exact NLL {exact_nll:.4f}")
print(f"{'guide width c':>14s} {'NLL estimate':>13s} {'error':>8s} {'mean se':>8s} {'median k':>9s} {'k > 0.7':>8s}")
for c in (1.0, 2.0, 0.5, 0.2):
    ll = log_likelihood(model, make_guide(c), x, NUM_SAMPLES)
    error = ll.nll - exact_nll
    se = ll.standard_error.mean().item()
    print(f"{c:14.1f} {ll.nll:13.4f} {error:8.4f} {se:8.4f} {np.median(ll.pareto_k):9.2f} {ll.khat_bad_fraction:8.0%}")
# [/psis]

# [arviz]
print("\nPart 2: the guide's draws for the first data point, with ArviZ")
exact_mean, exact_sd = m * x[0, 0].item(), math.sqrt(v)
print(f"exact posterior: mean {exact_mean:.3f}, sd {exact_sd:.3f}")
for c in (1.0, 0.2):
    idata = to_inference_data(model, make_guide(c), x[:5], num_samples=NUM_SAMPLES, num_chains=2)
    summary = az.summary(idata, var_names=["z"], coords={"datum": [0]}, kind="stats")
    print(f"guide c = {c}:\n{summary.to_string()}")
# [/arviz]

# [mi]
print("\nPart 3: the encoder's mutual information I(x; z), exact against the two estimators")


def exact_mi(c):
    return 0.5 * math.log(1.0 + m**2 * (w**2 + s**2) / (c**2 * v))


def guide_draw(data, c):
    return dist.Normal(m * data[:, :1], c * math.sqrt(v)).sample()


noisy = torch.cat([x, torch.randn(N, 10)], dim=1)  # 10 extra columns of noise, independent of z
print(f"{'case':32s} {'exact':>7s} {'KSG':>7s} {'aggregate':>10s} {'log N':>7s}")
for label, data, c in [
    ("posterior-width encoder", x, 1.0),
    ("sharp encoder (c = 0.01)", x, 0.01),
    ("sharp encoder, first 100 points", x[:100], 0.01),
    ("x with 10 noise columns", noisy, 1.0),
]:
    exact = exact_mi(c)  # the noise columns add nothing: z depends on column 0 alone
    ksg = ksg_mutual_information(data, guide_draw(data, c), k=5)
    aggregate = mutual_information(make_guide(c), data).mi
    print(f"{label:32s} {exact:7.3f} {ksg:7.3f} {aggregate:10.3f} {math.log(len(data)):7.3f}")
# [/mi]
