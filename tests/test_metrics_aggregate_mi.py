import math

import pyro
import pyro.distributions as dist
import torch

from pyromim.metrics import mutual_information
from pyromim.metrics.aggregate_mi import _log_mixture
from pyromim.metrics.trace_layout import inspect_layout


def gaussian_encoder(scale):
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, scale).to_event(1))

    return guide


def hierarchical_guide(x):
    """z1 | x ~ N(x, 0.5); z2 | z1, x ~ N(z1 * x, 0.3): q(z2 | x) depends on the drawn z1."""
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Normal(x, 0.5).to_event(1))
        pyro.sample("z2", dist.Normal(z1 * x, 0.3).to_event(1))


def test_separated_encodings_reach_the_log_n_ceiling():
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(100.0 * torch.arange(len(x)), 0.1))

    result = mutual_information(guide, torch.zeros(50))
    assert math.isclose(result.mi, math.log(50), rel_tol=1e-9)
    assert result.log_n_ceiling == math.log(50)


def test_encoder_ignoring_x_has_zero_mi():
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(len(x), 3), 1.0).to_event(1))

    assert abs(mutual_information(guide, torch.randn(40, 2)).mi) < 1e-12


def test_two_perfectly_separated_clusters_carry_log_2():
    x = torch.tensor([0.0, 1.0]).repeat(30)[:, None]
    result = mutual_information(gaussian_encoder(0.5), 20.0 * x, num_samples=3)
    # overlap between N(0, .5) and N(20, .5) is below exp(-300): exactly log 2
    assert math.isclose(result.mi, math.log(2), rel_tol=1e-9)


def test_blockwise_mixture_equals_a_dense_computation():
    x = torch.randn(23, 2)
    draws = {"z1": torch.randn(17, 2), "z2": torch.randn(17, 2)}
    layout = inspect_layout(None, hierarchical_guide, x)
    blocks = _log_mixture(hierarchical_guide, x, draws, layout, data_chunk=5, draw_chunk=4)
    z1, z2 = draws["z1"][:, None], draws["z2"][:, None]  # (draws, 1, 2) against data (23, 2)
    dense = dist.Normal(x, 0.5).log_prob(z1).sum(-1) + dist.Normal(z1 * x, 0.3).log_prob(z2).sum(-1)
    assert torch.allclose(blocks, torch.logsumexp(dense.double(), 1), atol=1e-5)


def test_gaussian_channel_approaches_its_analytic_mi():
    # x ~ N(0, I_2), z | x ~ N(x, s^2 I_2): I = log(1 + 1/s^2) nats in total.
    x = torch.randn(2000, 2)
    result = mutual_information(gaussian_encoder(0.5), x, num_samples=2)
    # The plug-in mixture of N = 2000 kernels of width s overestimates q(z)'s spread by
    # O(1/N) and its log-density by O(1/sqrt(N)); with 4000 draws the Monte Carlo sd is
    # about 0.02. 0.1 nats covers both at ~6% of the value.
    assert abs(result.mi - math.log(1 + 1 / 0.25)) < 0.1
