"""Pyro's VAE (``examples/vae/vae.py``), adapted only in its data source, trained with ``Trace_MIM``.

The model and guide keep the structure of Pyro's example: a softplus MLP
encoder that flattens its input with ``x.reshape(-1, 784)`` (here 64 pixels)
and returns ``exp`` scales, a sigmoid decoder, a standard-normal ``"latent"``
site and an ``"obs"`` site that scores ``x.reshape(-1, 784)``: a *view* of the
guide's argument, which ``Trace_MIM`` routes generated images back into, in
the argument's ``(batch, 1, 8, 8)`` shape. The images are scikit-learn's 8x8
digits with intensities in [0, 1] (Pyro's example uses MNIST intensities the
same way, with ``validate_args=False``).

    python examples/pyro_programs/vae.py             # ELBO and MIM, 1500 steps each (about a minute)
    python examples/pyro_programs/vae.py --steps 200 # quick mode: 19 s

The full run's minute was measured on 2 CPU cores whose load was not recorded
(not re-measured); the quick mode's 19 s with ``OMP_NUM_THREADS=1`` on 2 CPU cores shared with other work (load average about 5).
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from _shared import digit_images, minibatches, train
from pyro.infer import Trace_ELBO
from torch import nn

from pyromim import Trace_MIM
from pyromim.metrics import evaluate

PIXELS = 64  # 784 in Pyro's MNIST example


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x):
        x = x.reshape(-1, PIXELS)
        hidden = self.softplus(self.fc1(x))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, PIXELS)
        self.softplus = nn.Softplus()

    def forward(self, z):
        return torch.sigmoid(self.fc21(self.softplus(self.fc1(z))))


class VAE(nn.Module):
    def __init__(self, z_dim=50, hidden_dim=400):
        super().__init__()
        self.encoder = Encoder(z_dim, hidden_dim)
        self.decoder = Decoder(z_dim, hidden_dim)
        self.z_dim = z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1), obs=x.reshape(-1, PIXELS))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def images():
    """Digits as ``(N, 1, 8, 8)``, the layout of Pyro's MNIST loader; and labels."""
    x, y = digit_images()
    return x.unsqueeze(1), y


def fit(loss, steps, seed=0, z_dim=50, hidden_dim=400, batch_size=128, lr=1e-3):
    """Train Pyro's VAE on the first 1400 digits with ``loss``; the VAE and per-datum losses."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = VAE(z_dim, hidden_dim)
    x, _ = images()
    train_x = x[:1400]
    batches = ((train_x[idx],) for idx in minibatches(len(train_x), batch_size, steps, seed))
    return vae, train(vae.model, vae.guide, loss, batches, lr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    x, y = images()
    for name, loss in (("Trace_ELBO", Trace_ELBO()), ("Trace_MIM", Trace_MIM())):
        vae, losses = fit(loss, args.steps)
        m = evaluate(
            vae.model,
            vae.guide,
            x[1400:],
            y[1400:],
            x[:1400],
            y[:1400],
            num_samples=100,
            keys=("nll", "mi_aggregate", "active_units", "knn5_accuracy", "consistency"),
        )
        print(
            f"{name}: loss {losses[0]:.1f} -> {losses[-1]:.1f} per digit; test NLL {m['nll']:.1f} nats, "
            f"MI {m['mi_aggregate']:.2f} nats, active units {m['active_units']}/50, "
            f"KNN-5 {m['knn5_accuracy']:.3f}, consistency {m['consistency']:.2f}"
        )


if __name__ == "__main__":
    main()
