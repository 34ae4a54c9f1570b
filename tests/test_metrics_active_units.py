import pyro
import pyro.distributions as dist
import pytest
import torch
from metrics_models import autoencoder  # noqa: F401 (pytest fixtures)

from pyromim.metrics import active_units


def test_collapsed_dimension_is_inactive_and_variances_are_exact(autoencoder):
    x = torch.randn(500, 2)
    result = active_units(autoencoder.guide, x)
    # posterior means are [x / 2, 0]: population variances var(x) / 4 and exactly 0
    expected = torch.cat([(x.double() / 2).var(0, unbiased=False), torch.zeros(1)])
    assert torch.allclose(result.variance, expected, atol=1e-7)
    assert result.num_active == 2
    assert result.active.tolist() == [True, True, False]


def test_threshold_separates_weak_from_strong_dimensions():
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            loc = torch.stack([x, 0.05 * x], -1)  # variances 1 and 0.0025
            pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))

    x = (torch.arange(1000.0) - 499.5) / 288.675  # population variance 1 (uniform grid)
    assert active_units(guide, x).num_active == 1
    assert active_units(guide, x, threshold=0.001).num_active == 2


def test_hierarchical_guide_uses_parent_means_and_ignores_sampling_noise():
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(x, 5.0))
            pyro.sample("z2", dist.Normal(3.0 * z1, 5.0))

    x = torch.randn(300)
    result = active_units(guide, x)
    # means: z1 = x, z2 = 3 x (parents at their means), no noise from the scale 5
    expected = torch.stack([x.double().var(unbiased=False), 9 * x.double().var(unbiased=False)])
    assert torch.allclose(result.variance, expected, rtol=1e-5)


def test_latent_without_a_mean_is_a_clear_error():
    class NoMean(dist.Normal):
        @property
        def mean(self):
            raise NotImplementedError

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", NoMean(x, 1.0))

    with pytest.raises(NotImplementedError, match="site 'z': NoMean has no .mean"):
        active_units(guide, torch.randn(10))
