import math

import pyro
import pyro.distributions as dist
import torch
from metrics_models import autoencoder  # noqa: F401 (pytest fixtures)

from pyromim.metrics import reconstruction_error


def test_posterior_mean_reconstruction_and_expected_nll_match_closed_forms(autoencoder):
    x = torch.randn(200, 2)
    result = reconstruction_error(autoencoder.model, autoencoder.guide, x, num_samples=400)
    assert result.error < 1e-6  # x_hat = 2 * (x / 2) = x
    # 2 z - x ~ N(0, 0.6^2) per coordinate under q, so per datum
    # E[-log N(x; 2z, 0.1^2)] = 2 [log(0.1) + log(2 pi) / 2 + 0.36 / 0.02].
    exact = 2 * (math.log(0.1) + 0.5 * math.log(2 * math.pi) + 0.36 / 0.02)
    # the per-datum NLL is 18 chi2_2-distributed around the mean (sd 36/sqrt(2)=25): the
    # mean over 200 x 400 draws has sd 25/sqrt(80000) = 0.09; allow 0.5.
    assert abs(result.expected_nll - exact) < 0.5


def test_error_is_the_mean_euclidean_distance_to_the_decoded_mean():
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x / 4, 0.3).to_event(1))

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(2 * z, 0.1).to_event(1), obs=x)

    x = torch.randn(100, 2)
    result = reconstruction_error(model, guide, x)
    expected = (x / 2).norm(dim=-1).double()  # x_hat = x / 2
    assert torch.allclose(result.per_datum_error, expected, atol=1e-6)
    assert math.isclose(result.error, expected.mean().item(), rel_tol=1e-6)


def test_bernoulli_pixels_compare_against_their_probabilities():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=z.expand(z.shape[:-1] + (4,))).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(len(x), 1), 1.0).to_event(1))

    x = torch.ones(10, 4)
    result = reconstruction_error(model, guide, x)
    # z mean 0 -> probabilities 0.5 in 4 pixels -> distance sqrt(4 * 0.25) = 1
    assert math.isclose(result.error, 1.0, rel_tol=1e-6)


def test_grey_level_pixels_compare_against_the_discretized_logistic_mean():
    from pyromim.distributions import DiscretizedLogistic

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            loc = 0.5 + 0.1 * z.expand(z.shape[:-1] + (4,))
            pyro.sample("x", DiscretizedLogistic(loc, torch.full_like(loc, 0.05)).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(len(x), 1), 1.0).to_event(1))

    x = torch.randint(0, 256, (10, 4)) / 255
    result = reconstruction_error(model, guide, x)
    # z mean 0 -> every pixel's mean is that of DiscretizedLogistic(0.5, 0.05), which is
    # symmetric about 0.5 on the symmetric grid: exactly 0.5
    expected = (x.double() - 0.5).norm(dim=-1)
    assert torch.allclose(result.per_datum_error, expected, atol=1e-6)


def test_tokens_without_a_mean_give_nan_with_a_warning_naming_the_site(caplog):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            logits = z.unsqueeze(-1).expand(z.shape[:-1] + (3, 5))
            pyro.sample("tokens", dist.Categorical(logits=logits).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(len(x), 1), 1.0).to_event(1))

    x = torch.randint(0, 5, (8, 3))
    with caplog.at_level("WARNING", logger="pyromim.metrics.reconstruction"):
        result = reconstruction_error(model, guide, x)
    assert math.isnan(result.error)
    assert "observed site 'tokens' (Categorical) has no finite mean" in caplog.text
    assert math.isfinite(result.expected_nll)


def test_sampled_error_matches_the_closed_form_of_a_joint_draw(autoencoder):
    # x - x~ = x - (2 z + 0.1 e) with 2 z - x ~ N(0, 0.6^2): each coordinate is
    # N(0, 0.37), so ||x - x~|| = sqrt(0.37) chi_2, of mean sqrt(0.37) sqrt(pi / 2).
    torch.manual_seed(0)
    x = torch.randn(20_000, 2)
    result = reconstruction_error(autoencoder.model, autoencoder.guide, x, sampled=True)
    exact = math.sqrt(0.37) * math.sqrt(math.pi / 2)
    # sd of one distance sqrt(0.37 (2 - pi / 2)) = 0.40, of the mean 0.0028: allow 5 of those
    assert abs(result.sampled_error - exact) < 0.015
    assert result.error < 1e-6  # the posterior-mean error is unchanged by the extra draw
    assert math.isnan(reconstruction_error(autoencoder.model, autoencoder.guide, x[:10]).sampled_error)
