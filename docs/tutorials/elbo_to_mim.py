"""Tutorial: from Trace_ELBO to Trace_MIM on your own Pyro model, and reading the metrics.

A VAE written in plain Pyro (no pyromim building blocks) on the MIM paper's
2-D mixture of five Gaussians, trained twice in the same ``SVI`` loop: once
with ``Trace_ELBO()``, once with ``Trace_MIM()``. Then every number of
``pyromim.metrics.evaluate`` is printed side by side.

    python docs/tutorials/elbo_to_mim.py                              # a few minutes on 2 cores
    PYROMIM_TUTORIAL_FAST=1 python docs/tutorials/elbo_to_mim.py      # seconds: a smoke run
"""

# [setup]
import os

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO

from pyromim import Trace_MIM
from pyromim.data import toy4
from pyromim.metrics import EVALUATE_KEYS, evaluate

FAST = os.environ.get("PYROMIM_TUTORIAL_FAST") == "1"  # the test suite's smoke mode
EPOCHS, N_TRAIN, NUM_SAMPLES = (2, 500, 20) if FAST else (25, 3000, 200)

splits = toy4(n_train=N_TRAIN, n_val=0, n_test=1000, seed=0)
x_train, x_test = splits.train.x, splits.test.x  # (N, 2) float tensors
y_train, y_test = splits.train.labels, splits.test.labels  # mixture component of each point
# [/setup]


# [model]
def make_vae(latent_dim=2, hidden=50):
    """A Gaussian VAE: model ``p(z) p(x|z)`` and guide ``q(z|x)``, each with its own network."""
    encoder = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2 * latent_dim))
    decoder = torch.nn.Sequential(torch.nn.Linear(latent_dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 4))

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[-2]):  # size plates from the right (see below)
            z = pyro.sample("z", dist.Normal(torch.zeros(latent_dim), 1.0).to_event(1))
            loc, log_scale = decoder(z).chunk(2, -1)
            pyro.sample("x", dist.Normal(loc, log_scale.exp() + 1e-3).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[-2]):
            loc, log_scale = encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp() + 1e-3).to_event(1))

    return model, guide


# [/model]


# [train]
def train(loss, seed=0):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model, guide = make_vae()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)
    for _ in range(EPOCHS):
        for batch in x_train[torch.randperm(len(x_train))].split(128):
            svi.step(batch)
    return model, guide


results = {}
for name, loss in [("ELBO", Trace_ELBO()), ("MIM", Trace_MIM())]:  # the only line that differs
    model, guide = train(loss)
    results[name] = evaluate(model, guide, x_test, y_test, x_train, y_train, num_samples=NUM_SAMPLES)
# [/train]

# [report]
print(f"{'metric':24s}{'ELBO':>10s}{'MIM':>10s}")
for key in EVALUATE_KEYS:
    print(f"{key:24s}{results['ELBO'][key]:10.3f}{results['MIM'][key]:10.3f}")
# [/report]
