"""generation_consistency against the closed form of a linear-Gaussian model."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyromim.metrics import generation_consistency

A, S = 1.5, 0.8  # x = A z + S eps, z ~ N(0, 1)


def make_pair(c):
    def model(x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            pyro.sample("x", dist.Normal(A * z, S).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal(c * x, 0.3).to_event(1))

    return model, guide


@pytest.mark.parametrize("c", [A / (A**2 + S**2), 0.3, 0.0])
def test_fraction_of_latent_variance_recovered_matches_closed_form(c):
    pyro.set_rng_seed(0)
    n = 40_000
    result = generation_consistency(*make_pair(c), torch.zeros(n, 1), memory_budget=2**20)
    # E (z - c x)^2 = (1 - c A)^2 + c^2 S^2 with Var z = 1; the estimate's sd is below 0.01 at n = 40k
    expected = 1 - ((1 - c * A) ** 2 + c**2 * S**2)
    assert result.num_samples == n
    assert result.r2 == pytest.approx(expected, abs=0.02)
    assert result.per_dim.shape == (1,)


def test_two_observed_sites_on_one_argument_are_refused():
    def model(x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)
            pyro.sample("y", dist.Normal(z, 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"observed sites \['x', 'y'\] would all be handed to guide argument 'x'"):
        generation_consistency(model, make_pair(0.5)[1], torch.zeros(10, 1))


def test_a_tuple_batch_with_a_covariate_matches_the_closed_form():
    """``model(x, shift)``: x = A z + shift + S eps; the guide reads ``x - shift``."""
    c = A / (A**2 + S**2)

    def model(x, shift):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            pyro.sample("x", dist.Normal(A * z + shift, S).to_event(1), obs=x)

    def guide(x, shift):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal(c * (x - shift), 0.3).to_event(1))

    pyro.set_rng_seed(0)
    n = 40_000
    shift = 5.0 * torch.randn(n, 1)  # without the shift routed with x, r2 would be far below
    result = generation_consistency(model, guide, (torch.zeros(n, 1), shift), memory_budget=2**20)
    assert result.r2 == pytest.approx(1 - ((1 - c * A) ** 2 + c**2 * S**2), abs=0.02)
