"""A short training run on binarised digits: A-MIM against the ELBO.

The same catalogue model (16-D latent, MLP encoder, Bernoulli decoder) and the
same minibatches, trained with ``Trace_ELBO`` and with ``Trace_MIM(symmetric=False)``.
MIM rewards a low-entropy encoder (``+ log q(z|x)`` where the ELBO has ``-``),
so its posterior standard deviations must come out smaller, and its encoder
must use every latent dimension (active units, Burda et al. 2016).
"""

import dataclasses
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from sklearn.datasets import load_digits

from pyromim import Trace_MIM, build_model
from pyromim.infer import CollapsingPriorWarning
from pyromim.specs import resolve_spec

LATENT = 16


def train(loss, x, steps=200, batch=128):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    spec = resolve_spec("digits_normal")
    spec = spec.replace(model=dataclasses.replace(spec.model, latent_dim=LATENT))
    vae = build_model(spec)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 3e-3}), loss=loss)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        svi.step(x[torch.randint(len(x), (batch,), generator=gen)])
    with torch.no_grad():
        loc, scale = vae.posterior(x)
    return loc, scale


def test_a_mim_keeps_all_units_active_with_tighter_posteriors():
    x = torch.tensor(load_digits().data > 7, dtype=torch.float32)
    elbo_loc, elbo_scale = train(Trace_ELBO(), x)
    mim_loc, mim_scale = train(Trace_MIM(symmetric=False), x)
    mim_active = int((mim_loc.var(0) > 0.01).sum())
    elbo_active = int((elbo_loc.var(0) > 0.01).sum())
    assert mim_active == LATENT, (mim_active, elbo_active)
    # per-dimension posterior spread, averaged over data: smaller in every dimension
    assert (mim_scale.mean(0) < elbo_scale.mean(0)).all(), (mim_scale.mean(0), elbo_scale.mean(0))
    assert mim_scale.mean() < 0.5 * elbo_scale.mean()


def _learned_prior_pair(prior_scale):
    """A conditional-prior pair (CVAE style) whose prior scale is the tensor given."""
    decoder = torch.nn.Linear(2, 16)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), prior_scale).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal(torch.zeros(2), 0.1).to_event(1))

    return model, guide


@pytest.mark.parametrize("symmetric", [False, True])
def test_a_collapsing_learned_prior_is_named_once(symmetric):
    x = torch.bernoulli(torch.full((8, 16), 0.5))
    cases = [
        (torch.tensor([1e-4, 0.5], requires_grad=True), True),  # learned and collapsed
        (torch.tensor([0.3, 0.5], requires_grad=True), False),  # learned, healthy
        (torch.tensor([1e-4, 0.5]), False),  # tiny but fixed by the user: not learned
    ]
    for scale, expect_warning in cases:
        loss = Trace_MIM(symmetric=symmetric)
        model, guide = _learned_prior_pair(scale)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                loss.differentiable_loss(model, guide, x).backward()
            with torch.no_grad():
                loss.loss(model, guide, x)
        named = [w for w in caught if issubclass(w.category, CollapsingPriorWarning)]
        if expect_warning:
            assert len(named) == 1 and "latent site 'z'" in str(named[0].message) and "0.0001" in str(named[0].message)
        else:
            assert not named, [str(w.message) for w in named]
