"""Small Pyro model/guide pairs and losses shared by the training tests and their subprocess scripts."""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule
from torch import nn


class WarmupELBO(Trace_ELBO):
    """Trace_ELBO with the ``beta``/``symmetric`` attributes of a MIM loss, recording their values per call."""

    def __init__(self, beta=1.0, symmetric=True, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta
        self.symmetric = symmetric
        self.calls = []

    def differentiable_loss(self, model, guide, *args, **kwargs):
        self.calls.append((torch.is_grad_enabled(), self.beta, self.symmetric))
        return super().differentiable_loss(model, guide, *args, **kwargs)


def make_function_pair(x_dim=2, z_dim=2, hidden=8, seed=0):
    """A VAE written as plain functions with ``pyro.module`` networks and one ``pyro.param``.

    The networks are initialised from ``seed`` (they exist before ``fit`` seeds anything).
    """
    torch.manual_seed(seed)
    decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(), nn.Linear(hidden, x_dim))
    encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * z_dim))

    def model(x):
        pyro.module("decoder", decoder)
        log_scale = pyro.param("x_log_scale", torch.zeros(x_dim))
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([z_dim]).to_event(1))
            pyro.sample("x", dist.Normal(decoder(z), log_scale.exp()).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[-2]):
            out = encoder(x)
            pyro.sample("z", dist.Normal(out[..., :z_dim], out[..., z_dim:].exp()).to_event(1))

    return model, guide


class Decoder(PyroModule):
    def __init__(self, x_dim=2, z_dim=2, hidden=8):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(), nn.Linear(hidden, x_dim))
        self.log_scale = nn.Parameter(torch.zeros(x_dim))

    def forward(self, x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.z_dim]).to_event(1))
            pyro.sample("x", dist.Normal(self.net(z), self.log_scale.exp()).to_event(1), obs=x)


class Encoder(PyroModule):
    def __init__(self, x_dim=2, z_dim=2, hidden=8):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x):
        with pyro.plate("data", x.shape[-2]):
            out = self.net(x)
            pyro.sample("z", dist.Normal(out[..., : self.z_dim], out[..., self.z_dim :].exp()).to_event(1))


def final_parameters(checkpoint):
    """The ``state_dict`` of a checkpoint (loaded weights-only)."""
    from pyromim.training import load_checkpoint

    return load_checkpoint(checkpoint)["state_dict"]
