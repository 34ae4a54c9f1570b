"""The "inverse H" ablation losses against closed forms and an independent Monte Carlo."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyromim import Trace_MIM
from pyromim.infer import Trace_ELBO_plus_H, Trace_MIM_minus_H

W, B, SP = 2.0, 0.5, 0.7


def model(x):
    with pyro.plate("data", x.shape[-1]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(W * z + B, SP), obs=x)


def exact_guide(x):
    v = W**2 + SP**2
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("z", dist.Normal(W * (x - B) / v, SP / math.sqrt(v)))


def prior_guide(x):
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))


def test_minus_h_vanishes_with_the_exact_posterior():
    # exact q(z|x): q(z|x) q(x) = p(x, z) on both sides, so M = p(x, z) and
    # l + log M = (1 - beta)/2 log p(x, z): zero at beta = 1 (float rounding only),
    # while MIM itself is -E log p(x, z), far from zero
    x = torch.randn(50) * 2
    assert abs(Trace_MIM_minus_H().loss(model, exact_guide, x)) < 1e-3
    assert Trace_MIM().loss(model, exact_guide, x) > 50
    half = Trace_MIM_minus_H(symmetric=False, beta=0.5)
    pyro.set_rng_seed(3)
    value = half.loss(model, exact_guide, x)
    pyro.set_rng_seed(3)
    log_p = -Trace_MIM(symmetric=False, q_x="marginal", beta=1.0).loss(model, exact_guide, x)
    assert math.isclose(value, 0.25 * log_p, rel_tol=1e-5)


def test_minus_h_matches_an_independent_monte_carlo_with_a_prior_guide():
    # q(z|x) = p(z): the encoder side is (1 - beta)/2 log p = 0 at beta = 1; the decoder side is
    # z ~ p(z), x ~ p(x|z), z' ~ p(z): log q(x, z) = log p(z) + log p(x|z'), and per sample
    # -1/2 [log p(x,z) + log p(z) + log p(x|z')] + log 1/2 [p(x,z) + p(z) p(x|z')]
    torch.manual_seed(0)
    n = 400_000
    z, z2 = torch.randn(n).double(), torch.randn(n).double()
    xs = W * z + B + SP * torch.randn(n).double()
    log_pz = dist.Normal(0.0, 1.0).log_prob(z)
    log_pxz = dist.Normal(W * z + B, SP).log_prob(xs)
    log_pxz2 = dist.Normal(W * z2 + B, SP).log_prob(xs)
    cost = (
        -0.5 * (log_pxz + log_pz + log_pz + log_pxz2)
        + torch.logaddexp(log_pxz + log_pz, log_pz + log_pxz2)
        - math.log(2)
    )
    expected = 0.5 * cost.mean().item()  # symmetric: 1/2 (E_enc + E_dec), E_enc = 0
    loss = Trace_MIM_minus_H(num_particles=200, vectorize_particles=True)
    x = torch.zeros(1000)  # encoder-side data do not matter here; 1000 decoder draws per particle
    values = torch.tensor([loss.loss(model, prior_guide, x) / 1000 for _ in range(5)])
    # 1,000,000 decoder draws in all: the per-sample cost has sd about 1.5, so the
    # standard error of the mean is 0.5 * 1.5 / 1000 < 1e-3; allow 5e-3
    assert abs(values.mean().item() - expected) < 5e-3


def test_plus_h_matches_the_closed_form_with_a_prior_guide():
    # -2 log p(x, z) + log q(z|x) with q = p(z): E = -2 E log p(x|z) - E log p(z), where
    # E log p(x|z) = -1/2 log(2 pi SP^2) - ((x - B)^2 + W^2) / (2 SP^2), E log p(z) = -1/2 log(2 pi) - 1/2
    x = torch.tensor([-1.0, 0.3, 2.0])
    e_lik = (-0.5 * math.log(2 * math.pi * SP**2) - ((x - B) ** 2 + W**2) / (2 * SP**2)).sum().item()
    e_prior = 3 * (-0.5 * math.log(2 * math.pi) - 0.5)
    expected = -2 * e_lik - e_prior
    loss = Trace_ELBO_plus_H(num_particles=200_000, vectorize_particles=True)
    # per-datum cost sd about 2 * W^2 / SP^2 * ... < 30 over 3 data: se < 30 / sqrt(2e5) = 0.07
    assert abs(loss.loss(model, prior_guide, x) - expected) < 0.35


def test_plus_h_is_the_elbo_plus_minus_log_p():
    x = torch.randn(20)
    pyro.set_rng_seed(1)
    plus = Trace_ELBO_plus_H().loss(model, exact_guide, x)
    pyro.set_rng_seed(1)
    elbo = pyro.infer.Trace_ELBO().loss(model, exact_guide, x)
    pyro.set_rng_seed(1)
    minus_log_p = Trace_MIM(symmetric=False).loss(model, exact_guide, x)
    assert math.isclose(plus, elbo + minus_log_p, rel_tol=1e-5)


def test_options_are_checked():
    with pytest.raises(ValueError, match="q_x='marginal'"):
        Trace_MIM_minus_H(symmetric=False, q_x="data")
    with pytest.raises(ValueError, match="symmetric must be False"):
        Trace_ELBO_plus_H(symmetric=True)


def test_make_loss_inverse_h_picks_the_ablation_losses():
    from pyromim.experiments import make_loss
    from pyromim.models import build_model

    toy = build_model("toy4")
    assert isinstance(make_loss("elbo", toy, inverse_h=True), Trace_ELBO_plus_H)
    mim = make_loss("mim", toy, inverse_h=True)
    assert isinstance(mim, Trace_MIM_minus_H) and mim.symmetric
    assert not make_loss("amim", toy, inverse_h=True).symmetric
    assert type(make_loss("mim", toy)) is Trace_MIM
    with pytest.raises(ValueError, match="q_x = 'marginal'"):
        make_loss("amim", toy, q_x="data", inverse_h=True)
