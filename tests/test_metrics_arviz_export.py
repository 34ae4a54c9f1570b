import numpy as np
import pyro.distributions as dist
import pytest
import torch
from metrics_models import autoencoder, learned_params  # noqa: F401 (pytest fixtures)

from pyromim.metrics import to_inference_data
from pyromim.metrics.arviz_export import load_arviz


@pytest.fixture
def idata(autoencoder):
    x = torch.randn(7, 2)
    return x, to_inference_data(autoencoder.model, autoencoder.guide, x, 40, num_chains=2)


def test_groups_dims_and_shapes(idata):
    x, data = idata
    assert set(data.groups()) == {
        "posterior",
        "posterior_predictive",
        "observed_data",
        "log_likelihood",
    }
    z = data.posterior["z"]
    assert z.dims == ("chain", "draw", "datum", "z_dim") and z.shape == (2, 20, 7, 3)
    pred = data.posterior_predictive["x"]
    assert pred.dims == ("chain", "draw", "datum", "x_dim") and pred.shape == (2, 20, 7, 2)
    obs = data.observed_data["x"]
    assert obs.dims == ("datum", "x_dim")
    np.testing.assert_array_equal(obs.values, x.numpy())
    assert data.log_likelihood["x"].dims == ("chain", "draw", "datum")
    assert list(data.posterior.coords["datum"].values) == list(range(7))


def test_values_are_posterior_draws_and_their_likelihoods(idata):
    x, data = idata
    z = torch.tensor(data.posterior["z"].values)
    # the collapsed third coordinate is N(0, 0.3^2): its sd over 280 draws is near 0.3
    assert abs(z[..., 2].std().item() - 0.3) < 0.05
    expected = dist.Normal(2 * z[..., :2], 0.1).log_prob(x).sum(-1)
    np.testing.assert_allclose(data.log_likelihood["x"].values, expected.numpy(), rtol=1e-5)
    # predictive draws scatter around the decoded draws with the decoder's sd 0.1
    resid = torch.tensor(data.posterior_predictive["x"].values) - 2 * z[..., :2]
    assert abs(resid.std().item() - 0.1) < 0.02


def test_arviz_summary_runs(idata):
    az = load_arviz()
    summary = az.summary(idata[1], var_names=["z"])
    assert len(summary) == 7 * 3
    assert np.isfinite(summary["mean"]).all()


def test_chains_must_divide_the_draws(autoencoder):
    with pytest.raises(ValueError, match="num_samples=10 must split evenly into num_chains=3"):
        to_inference_data(autoencoder.model, autoencoder.guide, torch.randn(3, 2), 10, num_chains=3)


def test_export_of_a_pair_whose_parameters_require_grad(learned_params):
    x = torch.randn(5)
    data = to_inference_data(learned_params.model, learned_params.guide, x, 10)
    assert data.posterior["z"].shape == (1, 10, 5, 1)  # a scalar site gets z_dim of size 1
    assert np.isfinite(data.log_likelihood["x"].values).all()
