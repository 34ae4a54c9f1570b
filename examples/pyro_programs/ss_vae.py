"""Pyro's semi-supervised VAE M2 (``examples/vae/ss_vae_M2.py``), adapted in its data source, trained with ``Trace_MIM``.

The model and guide keep Pyro's structure: ``model(xs, ys=None)`` with a
standard-normal style ``z``, a uniform one-hot digit label ``y`` (observed
when ``ys`` is given) and a Bernoulli image decoded from ``[z, y]``;
``guide(xs, ys=None)`` classifies the image when ``ys`` is missing and encodes
``z`` from ``[x, y]``. Supervised steps call ``svi.step(xs, ys)`` (two observed
sites, ``"x"`` and ``"y"``, each routed back to its own argument), unsupervised
steps ``svi.step(xs)``. The MLPs are written out here (Pyro's example imports
them from its ``utils.custom_mlp``) with the same layers and output activations.

As in Pyro's example, unsupervised steps sum the unobserved label out: the
guide is wrapped in ``config_enumerate(guide, "parallel", expand=True)``, and
the ELBO is ``TraceEnum_ELBO(max_plate_nesting=1)`` (without its warning on
supervised steps, which enumerate nothing). ``Trace_MIM`` takes the same
wrapped guide: its encoder side weights each of the 10 labels by
``q(y|x)`` exactly; its decoder side draws the label from the prior, and the
re-encoding that estimates ``log q(x)`` at generated images sums over the
label exactly as well.
``--sample-label`` drops the enumeration (the guide samples the label on both
sides; ``Trace_ELBO`` for the ELBO).

    python examples/pyro_programs/ss_vae.py             # ELBO and MIM, 100 labelled digits
    python examples/pyro_programs/ss_vae.py --steps 200 # quick mode: 17 s
    python examples/pyro_programs/ss_vae.py --steps 200 --sample-label

The full run (2000 steps each) was not timed; the quick mode's 17 s was measured
with ``OMP_NUM_THREADS=1`` on 2 CPU cores shared with other work (load average about 5).
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from _shared import digit_images, minibatches
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from torch import nn

from pyromim import Trace_MIM

PIXELS, CLASSES = 64, 10  # 784 and 10 in Pyro's example
EPSILON = 1e-7


class MLP(nn.Module):
    """Softplus MLP over concatenated inputs, with one output head per activation (as Pyro's custom MLP)."""

    def __init__(self, sizes, heads):
        super().__init__()
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.Softplus()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(sizes[-1], size) for size, _ in heads)
        self.activations = [activation for _, activation in heads]

    def forward(self, inputs):
        if isinstance(inputs, (list, tuple)):
            # broadcast batch dimensions (an enumerated label has one more on the left), as Pyro's MLP does
            batch = torch.broadcast_shapes(*(t.shape[:-1] for t in inputs))
            inputs = torch.cat([t.expand(batch + t.shape[-1:]) for t in inputs], -1)
        hidden = self.body(inputs)
        outs = [act(head(hidden)) for head, act in zip(self.heads, self.activations)]
        return outs[0] if len(outs) == 1 else outs


def clipped_softmax(h):
    return torch.softmax(h, -1).clamp(EPSILON, 1 - EPSILON)


def clipped_sigmoid(h):
    return torch.sigmoid(h).clamp(EPSILON, 1 - EPSILON)


class SSVAE(nn.Module):
    def __init__(self, output_size=CLASSES, input_size=PIXELS, z_dim=8, hidden_layers=(128,)):
        super().__init__()
        self.z_dim, self.output_size = z_dim, output_size
        hidden = list(hidden_layers)
        self.encoder_y = MLP([input_size] + hidden, [(output_size, clipped_softmax)])
        self.encoder_z = MLP([input_size + output_size] + hidden, [(z_dim, lambda h: h), (z_dim, torch.exp)])
        self.decoder = MLP([z_dim + output_size] + hidden, [(input_size, clipped_sigmoid)])

    def model(self, xs, ys=None):
        pyro.module("ss_vae", self)
        batch_size = xs.size(0)
        with pyro.plate("data"):
            prior_loc = xs.new_zeros([batch_size, self.z_dim])
            prior_scale = xs.new_ones([batch_size, self.z_dim])
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            alpha_prior = xs.new_ones([batch_size, self.output_size]) / (1.0 * self.output_size)
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            loc = self.decoder([zs, ys])
            pyro.sample("x", dist.Bernoulli(loc).to_event(1), obs=xs)

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                alpha = self.encoder_y(xs)
                ys = pyro.sample("y", dist.OneHotCategorical(alpha))
            loc, scale = self.encoder_z([xs, ys])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def classifier(self, xs):
        return self.encoder_y(xs).argmax(-1)


def digits_task(num_labelled=100, seed=0):
    """Binarised flat digits: a labelled subset (one-hot labels), the unlabelled rest, and a test split."""
    images, labels = digit_images()
    xs = (images > 0.5).float().reshape(len(images), PIXELS)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(xs), generator=g)
    test, train = order[:397], order[397:]
    one_hot = nn.functional.one_hot(labels, CLASSES).float()
    sup, unsup = train[:num_labelled], train[num_labelled:]
    return (xs[sup], one_hot[sup]), xs[unsup], (xs[test], labels[test])


def fit(loss, steps, seed=0, batch_size=100, every=4, lr=1e-3, enumerate_label=True):
    """Alternate one supervised step per ``every`` steps with unsupervised ones; the SS-VAE and losses.
    ``enumerate_label``: sum the label out on unsupervised steps, as Pyro's example does."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    ss_vae = SSVAE()
    (sup_x, sup_y), unsup_x, _ = digits_task(seed=seed)
    guide = config_enumerate(ss_vae.guide, "parallel", expand=True) if enumerate_label else ss_vae.guide
    svi = SVI(ss_vae.model, guide, pyro.optim.Adam({"lr": lr}), loss=loss)
    sup_batches = minibatches(len(sup_x), batch_size, steps, seed)
    unsup_batches = minibatches(len(unsup_x), batch_size, steps, seed + 1)
    losses = {"supervised": [], "unsupervised": []}
    for step in range(steps):
        if step % every == 0:
            idx = next(sup_batches)
            losses["supervised"].append(svi.step(sup_x[idx], sup_y[idx]) / len(idx))
        else:
            idx = next(unsup_batches)
            losses["unsupervised"].append(svi.step(unsup_x[idx]) / len(idx))
    return ss_vae, losses


@torch.no_grad()
def accuracy(ss_vae, seed=0):
    _, _, (test_x, test_y) = digits_task(seed=seed)
    return float((ss_vae.classifier(test_x) == test_y).float().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--sample-label", action="store_true", help="sample the label instead of summing it out")
    args = parser.parse_args()
    enumerate_label = not args.sample_label
    elbo = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False) if enumerate_label else Trace_ELBO()
    for name, loss in ((type(elbo).__name__, elbo), ("Trace_MIM", Trace_MIM())):
        ss_vae, losses = fit(loss, args.steps, enumerate_label=enumerate_label)
        un = losses["unsupervised"]
        print(
            f"{name}: unsupervised loss per digit {un[0]:.1f} -> {sum(un[-20:]) / 20:.1f}; "
            f"test accuracy {accuracy(ss_vae):.3f} from 100 labels"
        )


if __name__ == "__main__":
    main()
