"""Model/guide pairs with closed-form answers, shared by the metrics tests.

Test modules import the fixtures they use from here (the suite's conftest seeds
Pyro and clears the param store before each test).
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

W, B, SP = 2.0, 0.5, 0.7


class LinearGaussian:
    """z ~ N(0, 1), x | z ~ N(W z + B, SP^2): p(x) = N(B, W^2 + SP^2) in closed form."""

    var_x = W**2 + SP**2

    @staticmethod
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(W * z + B, SP), obs=x)

    @classmethod
    def exact_guide(cls, x):
        """The exact posterior N(W (x - B) / var_x, SP^2 / var_x)."""
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(W * (x - B) / cls.var_x, SP / math.sqrt(cls.var_x)))

    @staticmethod
    def prior_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))

    @staticmethod
    def poor_guide(x):
        """Far too narrow and centred wrongly: heavy-tailed importance weights."""
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 0.2))

    @classmethod
    def log_marginal(cls, x):
        return dist.Normal(B, math.sqrt(cls.var_x)).log_prob(x)


class PixelGaussian:
    """z ~ N(0, 1); D pixels x_j | z ~ N(z, S^2) in a nested plate.

    p(x) = N(0, S^2 I + 1 1^T); posterior z | x = N(sum(x) / (S^2 + D), S^2 / (S^2 + D)).
    """

    D, S = 6, 0.8

    @classmethod
    def model(cls, x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            with pyro.plate("pixels", cls.D, dim=-1):
                pyro.sample("x", dist.Normal(z, cls.S), obs=x)

    @classmethod
    def exact_guide(cls, x):
        v = cls.S**2 + cls.D
        with pyro.plate("data", x.shape[0], dim=-2):
            loc = x.sum(-1, keepdim=True) / v
            pyro.sample("z", dist.Normal(loc, cls.S / math.sqrt(v)))

    @classmethod
    def log_marginal(cls, x):
        cov = cls.S**2 * torch.eye(cls.D) + torch.ones(cls.D, cls.D)
        return dist.MultivariateNormal(torch.zeros(cls.D), cov).log_prob(x)


class Autoencoder:
    """2-D x, 3-D z whose last dimension is collapsed: the guide ignores x there.

    model: z ~ N(0, I_3), x | z ~ N(2 z[:2], 0.1^2 I_2);
    guide: z ~ N([x / 2, 0], 0.3^2 I_3), so the posterior-mean reconstruction is x itself.
    """

    @staticmethod
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(2 * z[..., :2], 0.1).to_event(1), obs=x)

    @staticmethod
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            loc = torch.cat([x / 2, torch.zeros(x.shape[:-1] + (1,))], -1)
            pyro.sample("z", dist.Normal(loc, 0.3).to_event(1))


@pytest.fixture
def linear_gaussian():
    return LinearGaussian


@pytest.fixture
def pixel_gaussian():
    return PixelGaussian


@pytest.fixture
def autoencoder():
    return Autoencoder


class LearnedParams:
    """The linear-Gaussian pair written with ``pyro.param`` leaves used directly as
    distribution parameters (the common Pyro style): metrics must not need their gradients.

    With the guide at the exact posterior, ``log p(x)`` is exact (see :class:`LinearGaussian`).
    """

    @staticmethod
    def model(x):
        loc = pyro.param("prior_loc", torch.zeros(()))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(loc, 1.0))
            pyro.sample("x", dist.Normal(W * z + B, SP), obs=x)

    @staticmethod
    def guide(x):
        scale = pyro.param("q_scale", torch.tensor(SP / math.sqrt(LinearGaussian.var_x)))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(W * (x - B) / LinearGaussian.var_x, scale))


@pytest.fixture
def learned_params():
    return LearnedParams


def assert_store_untouched(pair, x, estimate):
    """Run ``estimate()`` once ``pair`` (model and guide) has put its parameters in the param
    store; fail if it adds, changes or leaves a gradient on any of them."""
    store = pyro.get_param_store()
    pair.model(x), pair.guide(x)
    before = {k: v.detach().clone() for k, v in store.items()}
    assert before
    estimate()
    assert set(store.keys()) == set(before)
    for k, v in store.items():
        assert torch.equal(v.detach(), before[k]) and store._params[k].grad is None, k
