"""Pyro's conditional VAE (``examples/cvae/``), adapted only in its data source, trained with ``Trace_MIM``.

The task of Pyro's example: from one quadrant of a digit (``xs``: the other
pixels set to -1), predict the other three (``ys``: the input quadrant set to
-1). The networks keep the structure of Pyro's ``BaselineNet``, ``Encoder``
(prior and recognition networks, which paste ``ys`` into the masked part of
``xs``) and ``Decoder``, and the model observes ``ys[xs == -1].view(B, -1)``:
a *selection* of the guide's argument ``ys`` by a boolean mask, which
``Trace_MIM`` finds and routes generated pixels back into ``ys`` where
``xs == -1``. Digits are scikit-learn's 8x8 images, binarised, 4x4 quadrants.

    python examples/pyro_programs/cvae.py             # baseline, then the CVAE with ELBO and MIM
    python examples/pyro_programs/cvae.py --steps 200 # quick mode: 14 s

The full run (1000 steps each) was not timed; the quick mode's 14 s was measured
with ``OMP_NUM_THREADS=1`` on 2 CPU cores shared with other work (load average about 5).
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

SIDE = 8  # 28 in Pyro's MNIST example
PIXELS = SIDE * SIDE


class BaselineNet(nn.Module):
    def __init__(self, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, PIXELS)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.view(-1, PIXELS)
        hidden = self.relu(self.fc2(self.relu(self.fc1(x))))
        return torch.sigmoid(self.fc3(hidden))


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc31 = nn.Linear(hidden_2, z_dim)
        self.fc32 = nn.Linear(hidden_2, z_dim)
        self.relu = nn.ReLU()

    def forward(self, x, y):
        joined = x.clone()  # the input quadrant with y pasted where x is masked
        joined[x == -1] = y[x == -1]
        hidden = self.relu(self.fc2(self.relu(self.fc1(joined.view(-1, PIXELS)))))
        return self.fc31(hidden), torch.exp(self.fc32(hidden))


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, PIXELS)
        self.relu = nn.ReLU()

    def forward(self, z):
        return torch.sigmoid(self.fc3(self.relu(self.fc2(self.relu(self.fc1(z))))))


class CVAE(nn.Module):
    def __init__(self, z_dim, hidden_1, hidden_2, pre_trained_baseline_net):
        super().__init__()
        self.baseline_net = pre_trained_baseline_net
        self.prior_net = Encoder(z_dim, hidden_1, hidden_2)
        self.generation_net = Decoder(z_dim, hidden_1, hidden_2)
        self.recognition_net = Encoder(z_dim, hidden_1, hidden_2)

    def model(self, xs, ys=None):
        pyro.module("generation_net", self)
        batch_size = xs.shape[0]
        with pyro.plate("data"):
            with torch.no_grad():
                y_hat = self.baseline_net(xs).view(xs.shape)
            prior_loc, prior_scale = self.prior_net(xs, y_hat)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            loc = self.generation_net(zs)
            if ys is not None:
                mask_loc = loc[(xs == -1).view(-1, PIXELS)].view(batch_size, -1)
                mask_ys = ys[xs == -1].view(batch_size, -1)
                pyro.sample("y", dist.Bernoulli(mask_loc).to_event(1), obs=mask_ys)
            else:
                pyro.deterministic("y", loc.detach())
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                y_hat = self.baseline_net(xs).view(xs.shape)
                loc, scale = self.prior_net(xs, y_hat)
            else:
                loc, scale = self.recognition_net(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def quadrant_task():
    """Inputs (the top-left quadrant, -1 elsewhere) and outputs (-1 on that quadrant) of binarised digits."""
    images, _ = digit_images()
    images = (images > 0.5).float()
    given = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    given[: SIDE // 2, : SIDE // 2] = True
    xs = torch.where(given, images, torch.tensor(-1.0))
    ys = torch.where(given, torch.tensor(-1.0), images)
    return xs, ys


def train_baseline(xs, ys, steps, seed=0, hidden=(64, 64)):
    """Pyro's baseline step: fit ``ys`` from ``xs`` by binary cross-entropy on the masked pixels."""
    torch.manual_seed(seed)
    net = BaselineNet(*hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for idx in minibatches(len(xs), 128, steps, seed):
        target, masked = ys[idx].view(-1, PIXELS), (xs[idx] == -1).view(-1, PIXELS)
        loss = nn.functional.binary_cross_entropy(net(xs[idx])[masked], target[masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


def fit(loss, steps, seed=0, z_dim=8, hidden=(64, 64), baseline_steps=200, batch_size=128):
    """Train Pyro's CVAE with ``loss`` on the quadrant task; the CVAE and per-datum losses."""
    pyro.clear_param_store()
    xs, ys = quadrant_task()
    baseline = train_baseline(xs, ys, baseline_steps, seed, hidden)
    pyro.set_rng_seed(seed)
    cvae = CVAE(z_dim, *hidden, baseline)
    batches = ((xs[idx], ys[idx]) for idx in minibatches(len(xs), batch_size, steps, seed))
    return cvae, train(cvae.model, cvae.guide, loss, batches)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    for name, loss in (("Trace_ELBO", Trace_ELBO()), ("Trace_MIM", Trace_MIM())):
        _, losses = fit(loss, args.steps)
        print(f"{name}: loss per digit {losses[0]:.1f} -> {sum(losses[-20:]) / 20:.1f} (mean of the last 20 steps)")


if __name__ == "__main__":
    main()
