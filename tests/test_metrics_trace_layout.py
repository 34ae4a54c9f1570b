import pyro
import pyro.distributions as dist
import pytest
import torch
from metrics_models import linear_gaussian, pixel_gaussian  # noqa: F401 (pytest fixtures)

from pyromim.metrics import log_likelihood
from pyromim.metrics.trace_layout import find_data_plate, inspect_layout


def test_finds_the_plate_over_the_leading_dimension(pixel_gaussian):
    x = torch.randn(10, pixel_gaussian.D)
    layout = inspect_layout(pixel_gaussian.model, pixel_gaussian.exact_guide, x)
    assert layout.plate_name == "data"
    assert layout.data_dim == -2
    assert layout.max_plate_nesting == 2
    assert layout.latent_sites == ("z",)
    assert layout.observed_sites == ("x",)
    assert layout.observed_numel == pixel_gaussian.D


def test_plate_of_fixed_size_equal_to_the_batch_is_told_apart_by_a_second_probe():
    # 'pixels' has size 5 = the batch size: only 'data' follows the batch size.
    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            with pyro.plate("pixels", 5, dim=-1):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    assert find_data_plate(model, guide, torch.randn(5, 5)) == "data"


def test_two_plates_tracking_the_batch_are_ambiguous_and_named_in_the_error():
    def model(x):
        with pyro.plate("rows", len(x), dim=-2), pyro.plate("pairs", len(x), dim=-1):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x[:, None].expand(len(x), len(x)))

    def guide(x):
        with pyro.plate("rows", len(x), dim=-2), pyro.plate("pairs", len(x), dim=-1):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    x = torch.randn(4)
    with pytest.raises(ValueError, match=r"'pairs' \(dim -1, size 4\).*'rows'"):
        find_data_plate(model, guide, x)
    assert find_data_plate(model, guide, x, plate_name="rows") == "rows"


def test_unknown_plate_name_and_missing_plate_are_clear_errors(linear_gaussian):
    x = torch.randn(8)
    with pytest.raises(ValueError, match="plate_name='batch' is not a vectorised plate"):
        find_data_plate(linear_gaussian.model, linear_gaussian.exact_guide, x, "batch")

    def unplated_guide(x):
        pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))

    def unplated_model(x):
        z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError, match="no vectorised plates"):
        find_data_plate(unplated_model, unplated_guide, x)


def test_latent_outside_the_data_plate_is_rejected_by_name():
    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pass

    with pytest.raises(ValueError, match="site 'mu' is outside the data plate 'data'"):
        log_likelihood(model, guide, torch.randn(6), 4)


def test_the_memory_budget_counts_what_an_autoregressive_network_holds():
    """A GRU language model's layer outputs per sentence of L tokens, from its architecture: the
    initial state (H), the embeddings (L E), the recurrent outputs and final state (L H + H) and
    the logits (L V); a decoder outside the library's distributions adds nothing."""
    from pyromim.distributions import TokenSequenceDistribution
    from pyromim.metrics.encodings import bytes_per_pair
    from pyromim.nn import GRULanguageModel

    V, C, E, H, L = 11, 3, 5, 7, 6
    net = GRULanguageModel(V, C, embedding_dim=E, hidden_size=H)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(C), 1.0).to_event(1))
            pyro.sample("x", TokenSequenceDistribution(net, z, L), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(C), 1.0).to_event(1))

    x = torch.tensor([[3, 4, 2, 0, 0, 0], [5, 6, 7, 8, 9, 2], [4, 2, 0, 0, 0, 0]])
    layout = inspect_layout(model, guide, x)
    expected = H + L * E + (L * H + H) + L * V
    assert layout.network_numel == expected
    assert bytes_per_pair(layout) == (layout.pair_numel * 8 + expected) * 4

    # the same data through a Gaussian decoder: the trace's sites alone, as before
    def plain(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(C), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True).expand(-1, L), 1.0).to_event(1), obs=x.float())

    assert inspect_layout(plain, guide, x).network_numel == 0
