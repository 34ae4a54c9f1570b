"""Priors: normalisation, sampling against the density, tails, pathwise gradients."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import scipy.stats
import torch

from pyromim.blocks.priors import LearnedGaussianPrior, MixturePrior, StandardNormalPrior, VampPrior


def _linear_encoder(in_dim: int, latent_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(in_dim, latent_dim, generator=g)
    b = torch.randn(latent_dim, generator=g)

    def encoder(u: torch.Tensor):
        return u @ w.to(u) + b.to(u), 0.3 + torch.sigmoid(u.sum(-1, keepdim=True)).expand(-1, latent_dim)

    return encoder


def _make(kind: str, latent_dim: int) -> torch.nn.Module:
    torch.manual_seed(1)
    if kind == "normal":
        return StandardNormalPrior(latent_dim)
    if kind == "learned":
        prior = LearnedGaussianPrior(latent_dim)
        with torch.no_grad():
            prior.loc.copy_(torch.linspace(-0.5, 0.7, latent_dim))
            prior.raw_scale.copy_(torch.linspace(-0.3, 0.4, latent_dim))
        return prior
    if kind == "mixture":
        prior = MixturePrior(latent_dim, n_components=3, init_spread=1.5)
        with torch.no_grad():
            prior.logits.copy_(torch.tensor([0.5, -0.3, 0.1]))
        return prior
    if kind == "vamp":
        prior = VampPrior(latent_dim, 4, (3,), _linear_encoder(3, latent_dim), init_std=1.0)
        with torch.no_grad():
            prior.raw_scales.copy_(torch.linspace(-0.6, 0.5, 4 * latent_dim).reshape(4, latent_dim))
        return prior
    if kind == "vamp_encoder":
        return VampPrior(latent_dim, 4, (3,), _linear_encoder(3, latent_dim), init_std=1.0, component_scale="encoder")
    raise AssertionError(kind)


KINDS = ["normal", "learned", "mixture", "vamp", "vamp_encoder"]


def _grid(latent_dim: int, half_width: float = 9.0, n: int = 801):
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    mesh = torch.meshgrid(*([axis] * latent_dim), indexing="ij")
    return axis, torch.stack(mesh, -1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("latent_dim", [1, 2])
def test_density_integrates_to_one_by_quadrature(kind, latent_dim):
    prior = _make(kind, latent_dim).double()
    axis, points = _grid(latent_dim, n=4001 if latent_dim == 1 else 601)
    with torch.no_grad():
        density = prior().log_prob(points).exp().numpy()
    total = density
    for _ in range(latent_dim):
        total = np.trapezoid(total, axis.numpy(), axis=0)
    # Trapezoid error for these smooth densities on this grid is far below 1e-4.
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_density_integrates_to_one_by_monte_carlo_in_5d(kind):
    prior = _make(kind, 5)
    torch.manual_seed(2)
    proposal = torch.distributions.Normal(0.0, 3.0)
    z = proposal.sample((200_000, 5))
    with torch.no_grad():
        w = (prior().log_prob(z) - proposal.log_prob(z).sum(-1)).exp()
    se = w.std().item() / math.sqrt(w.numel())
    # Importance-sampling estimate of the integral; 5 standard errors.
    assert abs(w.mean().item() - 1.0) < 5 * se + 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_1d_samples_match_density_ks(kind):
    prior = _make(kind, 1).double()
    axis, points = _grid(1, n=8001)
    with torch.no_grad():
        density = prior().log_prob(points).exp().numpy()
        torch.manual_seed(3)
        samples = prior().rsample((20_000,)).squeeze(-1).numpy()
    cdf_values = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(axis.numpy()))])

    def cdf(x):
        return np.interp(x, axis.numpy(), cdf_values)

    # KS at the 0.1% level: the test fails when samples and density disagree.
    assert scipy.stats.kstest(samples, cdf).pvalue > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_2d_sample_moments_match_quadrature(kind):
    prior = _make(kind, 2).double()
    axis, points = _grid(2, n=601)
    with torch.no_grad():
        density = prior().log_prob(points).exp()
        torch.manual_seed(4)
        samples = prior().rsample((100_000,))

    def features(z):
        return torch.stack(
            [z[..., 0], z[..., 1], z[..., 0] ** 2, z[..., 0] * z[..., 1], torch.tanh(2 * z[..., 1] - 0.5)], -1
        )

    integrand = (features(points) * density.unsqueeze(-1)).numpy()
    expected = np.trapezoid(np.trapezoid(integrand, axis.numpy(), axis=0), axis.numpy(), axis=0)
    f = features(samples)
    se = (f.std(0) / math.sqrt(f.shape[0])).numpy()
    # Sample means are within 5 standard errors of the quadrature expectations.
    np.testing.assert_array_less(np.abs(f.mean(0).numpy() - expected), 5 * se + 1e-4)


@pytest.mark.parametrize("kind", ["mixture", "vamp"])
def test_mixture_log_density_finite_in_far_tails(kind):
    prior = _make(kind, 3)
    z = torch.tensor([[1e4, -1e4, 3e3], [1e6, 0.0, 0.0], [-50.0, 80.0, 1e3]], requires_grad=True)
    lp = prior().log_prob(z)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    assert torch.isfinite(z.grad).all()
    # Far in the tails the log-density behaves like that of the widest component: very negative.
    assert (lp < -1e3).all()


def _batched_grad(loss_fn, params, n_batches=20):
    """Per-batch gradients of ``loss_fn``; mean and standard error over batches."""
    grads = []
    for _ in range(n_batches):
        g = torch.autograd.grad(loss_fn(), params)
        grads.append(torch.cat([x.reshape(-1) for x in g]))
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(n_batches)


def test_mixture_sample_gradients_match_closed_form():
    torch.manual_seed(5)
    prior = _make("mixture", 2).double()
    params = [prior.logits, prior.locs, prior.raw_scales]
    a = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def mc_objective():
        z = prior().rsample((20_000,))
        return ((z * a).sum(-1) + (z**2).sum(-1)).mean()

    def exact_objective():
        d = prior()
        return (d.mean * a).sum() + (d.variance + d.mean**2).sum()

    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(exact_objective(), params)])
    mean, se = _batched_grad(mc_objective, params)
    assert exact[:3].abs().max() > 0.05  # the weights do matter here
    # Pathwise estimates are unbiased: within 5 standard errors (plus float slack).
    torch.testing.assert_close(mean, exact, atol=(5 * se + 1e-3).max().item(), rtol=0)


def test_vampprior_sample_gradients_reach_pseudo_inputs():
    torch.manual_seed(6)
    prior = _make("vamp", 2).double()
    a = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def mc_objective():
        return (prior().rsample((20_000,)) * a).sum(-1).mean()

    def exact_objective():
        return (prior().mean * a).sum()

    exact = torch.autograd.grad(exact_objective(), [prior.pseudo_inputs])[0].reshape(-1)
    mean, se = _batched_grad(mc_objective, [prior.pseudo_inputs])
    assert exact.abs().max() > 0.1
    torch.testing.assert_close(mean, exact, atol=(5 * se + 1e-3).max().item(), rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_priors_broadcast_under_plates_and_particles(kind):
    prior = _make(kind, 3)

    def model():
        with pyro.plate("data", 5, dim=-1):
            return pyro.sample("z", prior())

    vectorised = pyro.plate("particles", 4, dim=-2)(model)
    tr = pyro.poutine.trace(vectorised).get_trace()
    site = tr.nodes["z"]
    assert site["value"].shape == (4, 5, 3)
    assert site["fn"].log_prob(site["value"]).shape == (4, 5)


@pytest.mark.parametrize("component_scale", ["learned", "encoder"])
def test_vampprior_density_is_the_mixture_at_the_encoded_pseudo_inputs(component_scale):
    torch.manual_seed(7)
    prior = _make("vamp" if component_scale == "learned" else "vamp_encoder", 3).double()
    encoder = prior._encoder
    loc, enc_scale = encoder(prior.pseudo_inputs)
    scale = torch.nn.functional.softplus(prior.raw_scales) if component_scale == "learned" else enc_scale
    z = torch.randn(6, 3, dtype=torch.float64) * 2
    # independent computation: log mean_k prod_d N(z_d; loc_kd, scale_kd)
    per_component = torch.distributions.Normal(loc, scale).log_prob(z.unsqueeze(-2)).sum(-1)
    expected = torch.logsumexp(per_component, -1) - math.log(4)
    torch.testing.assert_close(prior().log_prob(z), expected)
    if component_scale == "learned":
        assert not torch.allclose(scale, enc_scale)  # the learned scales really are used


def test_vampprior_learned_scales_get_gradients_and_bad_option_is_named():
    prior = _make("vamp", 2)
    prior().log_prob(torch.randn(5, 2)).sum().backward()
    assert prior.raw_scales.grad is not None and prior.raw_scales.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="component_scale must be one of"):
        VampPrior(2, 3, (3,), _linear_encoder(3, 2), component_scale="fixed")
