"""The linear-Gaussian pair whose MIM loss has a closed form: ``z ~ N(0, 1)``,
``x | z ~ N(w z + b, sp)``, guide ``q(z|x) = N(a x + c, s)``."""

import pyro
import pyro.distributions as dist
import torch

NAMES = ["w", "b", "sp", "a", "c", "s"]


def make_params():
    values = [1.3, 0.4, 0.6, 0.5, -0.2, 0.45]
    return {n: torch.tensor(v, requires_grad=True) for n, v in zip(NAMES, values)}


def make_model_guide(p):
    def model(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(p["w"] * z + p["b"], p["sp"]), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(p["a"] * x + p["c"], p["s"]))

    return model, guide
