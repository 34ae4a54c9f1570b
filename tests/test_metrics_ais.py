"""Annealed importance sampling of log p(x) against closed forms and quadrature."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from metrics_models import assert_store_untouched, learned_params, linear_gaussian  # noqa: F401 (fixtures)
from test_metrics_likelihood import _sharp_shifted_linear_gaussian

from pyromim.metrics import ais_log_likelihood, log_likelihood
from pyromim.metrics.ais import sigmoid_schedule


def test_with_the_exact_posterior_as_start_every_chain_weighs_exactly_p_x(linear_gaussian):
    """With q0 the exact posterior, log p(x, z) - log q0(z) = log p(x) for every z, so every increment of
    every chain is (beta_t - beta_(t-1)) log p(x) and the estimate is exact whatever the transitions do;
    a memory budget of a few data a block gives the same."""
    x = torch.linspace(-3.0, 4.0, 11)
    exact = linear_gaussian.log_marginal(x).double()
    result = ais_log_likelihood(linear_gaussian.model, linear_gaussian.exact_guide, x, 16, num_steps=10)
    done = []
    small = ais_log_likelihood(
        linear_gaussian.model,
        linear_gaussian.exact_guide,
        x,
        16,
        num_steps=10,
        memory_budget=40_000,
        progress=done.append,
    )
    assert len(done) > 1 and done == sorted(done) and done[-1] == len(x)  # one call per block of data
    for r in (result, small):
        assert torch.allclose(r.per_datum, exact, atol=1e-4), (r.per_datum - exact).abs().max()
        assert r.khat_bad_fraction == 0.0 and r.num_samples == 16
    assert result.standard_error.max() < 1e-3


def test_annealing_from_a_sharp_shifted_guide_reaches_the_exact_likelihood():
    """The guide is sharp (scale 0.03) and 0.3 off a correlated 2-D posterior: importance sampling with
    it errs by about 4 nats with Pareto k > 0.7 on most data. AIS from the same guide closes the gap as
    the temperatures grow (a one-sided error: E[w] = p(x)), and at 500 its mean error over 40 data is
    within 0.05 nats (its standard error over the data is about 0.02) with reliable weights."""
    model, guide, exact_dist = _sharp_shifted_linear_gaussian()
    pyro.set_rng_seed(0)
    x = torch.randn(40, 3) * 1.5
    exact = exact_dist.log_prob(x).double()
    plain = log_likelihood(model, guide, x, num_samples=64)
    short = ais_log_likelihood(model, guide, x, 64, num_steps=20)
    long = ais_log_likelihood(model, guide, x, 64)  # 500 temperatures of one leapfrog step
    assert plain.khat_bad_fraction > 0.3 and (plain.per_datum - exact).mean() < -3.0
    assert (short.per_datum - exact).mean() < -0.5  # too few temperatures: a bound, far off
    error = long.per_datum - exact
    assert abs(float(error.mean())) < 0.05, error
    assert long.khat_bad_fraction < 0.3
    assert (error.abs() < 5 * long.standard_error + 0.05).all(), (error, long.standard_error)


def test_annealing_on_a_positive_latent_keeps_the_change_of_variables():
    """tau ~ LogNormal(0, 0.5), x_1..4 | tau ~ N(0, tau^2): the chains move log tau, so each density carries
    the map's Jacobian; started from proposals refitted per datum, the estimate matches quadrature on a
    fine grid of log tau within 5 standard errors (plus 0.02 nats) on every datum and within 0.01 nats
    on average (measured: 0.002, the largest error 0.044)."""

    def model(x):
        with pyro.plate("data", x.shape[0]):
            tau = pyro.sample("tau", dist.LogNormal(0.0, 0.5))
            pyro.sample("x", dist.Normal(torch.zeros(4), tau.unsqueeze(-1)).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("tau", dist.LogNormal(0.8, 0.02))

    pyro.set_rng_seed(0)
    x = torch.randn(25, 4) * torch.linspace(0.3, 3.0, 25).unsqueeze(-1)
    grid = torch.linspace(-5.0, 5.0, 20001, dtype=torch.float64)
    log_joint = dist.Normal(0.0, 0.5).log_prob(grid)[:, None] + dist.Normal(0.0, grid.exp()[:, None, None]).log_prob(
        x.double()
    ).sum(-1)
    exact = torch.logsumexp(log_joint, 0) + math.log(float(grid[1] - grid[0]))
    result = ais_log_likelihood(model, guide, x, 64, num_steps=100, refit_steps=100)
    error = result.per_datum - exact
    assert result.khat_bad_fraction < 0.3
    assert abs(float(error.mean())) < 0.01, error
    assert (error.abs() < 5 * result.standard_error + 0.02).all(), (error, result.standard_error)


def test_ais_leaves_the_param_store_and_gradients_alone(learned_params):
    x = torch.randn(30) * 2
    assert_store_untouched(
        learned_params, x, lambda: ais_log_likelihood(learned_params.model, learned_params.guide, x, 8, num_steps=5)
    )


def test_ais_refuses_what_it_cannot_anneal():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(c + z, 1.0), obs=x)

    def discrete_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(torch.sigmoid(x)))
            pyro.sample("z", dist.Normal(x, 1.0))

    def partial_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 1.0))

    x = torch.randn(5)
    with pytest.raises(ValueError, match="site 'c' is discrete"):
        ais_log_likelihood(model, discrete_guide, x, 4, num_steps=2)
    with pytest.raises(ValueError, match=r"\['c'\] are not sampled by the guide"):
        ais_log_likelihood(model, partial_guide, x, 4, num_steps=2)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        ais_log_likelihood(model, discrete_guide, x, 4, num_steps=0)
    with pytest.raises(ValueError, match="leapfrog_steps must be >= 1"):
        ais_log_likelihood(model, discrete_guide, x, 4, leapfrog_steps=0)


def test_the_sigmoid_schedule_rises_from_0_to_1():
    beta = sigmoid_schedule(50)
    assert beta[0] == 0.0 and beta[-1] == 1.0 and len(beta) == 51
    steps = beta.diff()
    assert (steps > 0).all() and steps[0] < steps[25] and steps[-1] < steps[25]  # dense at both ends
