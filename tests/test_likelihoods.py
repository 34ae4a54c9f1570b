"""Likelihoods: log_prob against torch.distributions / closed forms, support checks."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from pyromim.blocks.likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    CategoricalLikelihood,
    DataSupportError,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
)
from pyromim.distributions import DiscretizedLogistic

SHAPE = (2, 3)


def _params(lik, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch,) + lik.param_shape, generator=g, dtype=torch.float64)


def test_bernoulli_matches_torch():
    lik = BernoulliLikelihood(SHAPE)
    p = _params(lik)
    x = (torch.rand(4, *SHAPE) < 0.5).double()
    expected = torch.distributions.Bernoulli(logits=p[:, 0]).log_prob(x).sum((-1, -2))
    torch.testing.assert_close(lik(p).log_prob(x), expected)


@pytest.mark.parametrize("mode", ["fixed", "learned", "per_datum"])
def test_gaussian_matches_closed_form(mode):
    lik = GaussianLikelihood(SHAPE, scale=mode, fixed_scale=0.7, min_scale=math.exp(-3.0)).double()
    p = _params(lik)
    x = torch.randn(4, *SHAPE, dtype=torch.float64)
    if mode == "fixed":
        sigma = torch.full(SHAPE, 0.7, dtype=torch.float64)
    elif mode == "learned":
        with torch.no_grad():
            lik.logvar.copy_(torch.linspace(-1, 1, 6).reshape(SHAPE))
        sigma = torch.exp(0.5 * torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(SHAPE))
    else:
        sigma = torch.exp(p[:, 1]) + math.exp(-3.0)
    mu = p[:, 0]
    closed = (-0.5 * ((x - mu) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)).sum((-1, -2))
    torch.testing.assert_close(lik(p).log_prob(x), closed)


def test_gaussian_per_datum_logvar_floor():
    lik = GaussianLikelihood((1,), scale="per_datum", min_scale=math.exp(-3.0))
    p = torch.tensor([[[0.0], [-50.0]]])
    assert lik(p).base_dist.scale.item() == pytest.approx(math.exp(-3.0))
    p = torch.tensor([[[0.0], [0.5]]])
    assert lik(p).base_dist.scale.item() == pytest.approx(math.exp(0.5) + math.exp(-3.0))


def test_discretized_logistic_sums_to_one_over_256_bins():
    grid = torch.arange(256, dtype=torch.float64) / 255
    loc = torch.tensor([-0.3, 0.0, 0.2, 0.5, 0.999, 1.4], dtype=torch.float64)
    scale = torch.tensor([1e-4, 0.01, 0.05, 0.3, 2.0, 10.0], dtype=torch.float64)
    d = DiscretizedLogistic(loc[:, None], scale[:, None])
    lp = d.log_prob(grid)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(6, dtype=torch.float64))


def test_discretized_logistic_matches_logistic_cdf_differences():
    loc, scale = 0.4, 0.08
    grid = torch.arange(256, dtype=torch.float64) / 255
    h = 0.5 / 255
    cdf = stats.logistic(loc=loc, scale=scale).cdf
    expected = cdf(grid.numpy() + h) - cdf(grid.numpy() - h)
    expected[0] = cdf(h)
    expected[-1] = 1 - cdf(1 - h)
    lik = DiscretizedLogisticLikelihood((256,)).double()
    params = torch.stack([torch.full((256,), loc), torch.full((256,), math.log(scale))]).double()
    lp_sum = lik(params).log_prob(grid)
    torch.testing.assert_close(lp_sum, torch.tensor(expected).log().sum())


def test_discretized_logistic_samples_are_on_the_grid_and_match_probabilities():
    torch.manual_seed(0)
    d = DiscretizedLogistic(torch.tensor(0.5), torch.tensor(0.05))
    x = d.sample((50_000,))
    assert torch.all((x * 255 - (x * 255).round()).abs() < 1e-5)
    p_mid = d.log_prob(torch.tensor(128 / 255)).exp().item()
    freq = (x == 128 / 255).double().mean().item()
    # Binomial standard error of the frequency; 5 standard errors.
    assert abs(freq - p_mid) < 5 * math.sqrt(p_mid * (1 - p_mid) / 50_000)


def test_categorical_matches_torch():
    lik = CategoricalLikelihood((5,), vocab_size=7)
    p = _params(lik)
    x = torch.randint(0, 7, (4, 5))
    expected = torch.distributions.Categorical(logits=p.movedim(1, -1)).log_prob(x).sum(-1)
    torch.testing.assert_close(lik(p).log_prob(x), expected)
    assert lik.encoder_input(x).shape == (4, 5, 7)
    assert lik.point_estimate(p).shape == (4, 5)


def test_poisson_matches_closed_form():
    lik = PoissonLikelihood(SHAPE)
    p = _params(lik)
    x = torch.randint(0, 10, (4, *SHAPE)).double()
    rate = p[:, 0].exp()
    closed = (x * rate.log() - rate - torch.lgamma(x + 1)).sum((-1, -2))
    torch.testing.assert_close(lik(p).log_prob(x), closed)


def test_negative_binomial_matches_scipy():
    lik = NegativeBinomialLikelihood(SHAPE)
    p = _params(lik)
    x = torch.randint(0, 10, (4, *SHAPE)).double()
    r = p[:, 0].exp().numpy()
    success = torch.sigmoid(p[:, 1]).numpy()  # torch's p: probability of each counted event
    # scipy's nbinom counts failures before r successes with success probability 1 - p_torch.
    expected = stats.nbinom(r, 1 - success).logpmf(x.numpy()).sum((-1, -2))
    torch.testing.assert_close(lik(p).log_prob(x), torch.tensor(expected))


@pytest.mark.parametrize(
    "lik, bad, suggestion",
    [
        (BernoulliLikelihood(SHAPE), torch.full((4, *SHAPE), 17 / 255), "discretized_logistic"),
        (BernoulliLikelihood(SHAPE), torch.full((4, *SHAPE), -1.3), "gaussian"),
        (DiscretizedLogisticLikelihood(SHAPE), torch.full((4, *SHAPE), 0.123456), "gaussian"),
        (PoissonLikelihood(SHAPE), torch.full((4, *SHAPE), 2.5), "gaussian"),
        (CategoricalLikelihood((3,), vocab_size=4), torch.tensor([[0, 4, 1]]), "categorical"),
        (NegativeBinomialLikelihood(SHAPE), torch.full((4, *SHAPE), -2.0), "gaussian"),
    ],
)
def test_support_check_names_a_fitting_likelihood(lik, bad, suggestion):
    with pytest.raises(DataSupportError, match=suggestion):
        lik.check_support(bad)


def test_support_check_passes_on_matching_data():
    BernoulliLikelihood(SHAPE).check_support(torch.randint(0, 2, (4, *SHAPE)).float())
    DiscretizedLogisticLikelihood(SHAPE).check_support(torch.randint(0, 256, (4, *SHAPE)) / 255)
    PoissonLikelihood(SHAPE).check_support(torch.randint(0, 50, (4, *SHAPE)).float())
    GaussianLikelihood(SHAPE).check_support(torch.randn(4, *SHAPE))


def test_support_check_names_the_wrong_shape():
    with pytest.raises(DataSupportError, match=r"\(\.\.\., 2, 3\)"):
        BernoulliLikelihood(SHAPE).check_support(torch.zeros(4, 6))


def test_registry_names_match_classes():
    assert set(LIKELIHOODS) == {
        "bernoulli",
        "gaussian",
        "discretized_logistic",
        "categorical",
        "poisson",
        "negative_binomial",
        "made",
        "pixelcnn",
        "gru",
    }


def test_discretized_logistic_mean_is_the_grid_expectation():
    grid = torch.arange(256, dtype=torch.float64) / 255
    loc = torch.tensor([[-0.3], [0.0], [0.2], [0.5], [0.999], [1.4]], dtype=torch.float64)
    scale = torch.tensor([[1e-4], [0.01], [0.05], [0.3], [2.0], [10.0]], dtype=torch.float64)
    d = DiscretizedLogistic(loc.expand(6, 3), scale.expand(6, 3))
    probs = DiscretizedLogistic(loc, scale).log_prob(grid).exp()  # (6, 256)
    expected = (probs * grid).sum(-1, keepdim=True).expand(6, 3)
    torch.testing.assert_close(d.mean, expected)
    # the likelihood's distribution (an Independent) exposes it too
    lik = DiscretizedLogisticLikelihood((3,)).double()
    params = torch.stack([loc.expand(6, 3), scale.log().expand(6, 3)], 1)
    torch.testing.assert_close(lik(params).mean, expected)
