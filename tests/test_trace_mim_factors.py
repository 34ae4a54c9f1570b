"""``pyro.factor``, ``poutine.mask`` and ``poutine.scale`` under Trace_MIM, each
against an independent computation.

A factor ``-0.1 u^2`` on ``u ~ N(0, 1)`` is the density ``N(0, 1/sqrt(1.2))`` up to
the constant ``log Z = -1/2 log 1.2``: the factored program and the rewritten one
make the same random draws, so their losses differ by that constant times the
term's weight and their gradients agree exactly (no score-function term for the
factor). Masks and scales on observed sites weight the site's log-density terms
on both sides, as in ``Trace_ELBO`` (they do not change how values are drawn),
and ``obs_mask``'s missing entries are local latents the guide imputes; both
are checked against a plain-torch Monte Carlo computation of the MIM loss.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from test_trace_mim_globals import make_model_guide, make_params

from pyromim import Trace_MIM

LOG_Z = -0.5 * math.log(1.2)
NARROW = 1.2**-0.5


def _global_pair(p, factored):
    def model(x):
        if factored:
            theta = pyro.sample("theta", dist.Normal(0.0, 1.0))
            pyro.factor("soft", -0.1 * theta**2)
        else:
            theta = pyro.sample("theta", dist.Normal(0.0, NARROW))
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(p["w"] * z + theta, p["sp"]), obs=x)

    return model, make_model_guide(p)[1]


def _local_pair(p, factored):
    def model(x):
        with pyro.plate("data", x.shape[-1]):
            if factored:
                z = pyro.sample("z", dist.Normal(0.0, 1.0))
                pyro.factor("soft", -0.1 * z**2)
            else:
                z = pyro.sample("z", dist.Normal(0.0, NARROW))
            pyro.sample("x", dist.Normal(p["w"] * z, p["sp"]), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(p["a"] * x + p["c"], p["s"]))

    return model, guide


def _loss_and_grads(loss_fn, model, guide, x, leaves, seed):
    pyro.set_rng_seed(seed)
    loss = loss_fn.differentiable_loss(model, guide, x)
    return loss.detach(), torch.stack(torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("symmetric", [True, False])
def test_factor_on_a_global_latent_is_part_of_its_prior(symmetric):
    x = torch.randn(20) + 0.5
    p = make_params()
    leaves = list(p.values())
    loss_fn = Trace_MIM(symmetric=symmetric, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    factored = _loss_and_grads(loss_fn, *_global_pair(p, True), x, leaves, seed=3)
    rewritten = _loss_and_grads(loss_fn, *_global_pair(p, False), x, leaves, seed=3)
    # the global terms carry the encoder side's weight of log p(x, z): -1/2 (symmetric), -1
    weight = -0.5 if symmetric else -1.0
    assert factored[0].item() == pytest.approx(rewritten[0].item() + weight * LOG_Z, abs=1e-4)
    torch.testing.assert_close(factored[1], rewritten[1], rtol=1e-5, atol=1e-5)


def test_factor_on_local_latents_gets_its_pathwise_gradient_in_a_mim():
    x = torch.randn(20)
    p = make_params()
    leaves = [p[n] for n in ("w", "sp", "a", "c", "s")]
    loss_fn = Trace_MIM(symmetric=False, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    factored = _loss_and_grads(loss_fn, *_local_pair(p, True), x, leaves, seed=4)
    rewritten = _loss_and_grads(loss_fn, *_local_pair(p, False), x, leaves, seed=4)
    assert factored[0].item() == pytest.approx(rewritten[0].item() - x.shape[0] * LOG_Z, abs=1e-3)
    torch.testing.assert_close(factored[1], rewritten[1], rtol=1e-5, atol=1e-5)


def test_factor_on_local_latents_is_refused_on_the_decoder_side():
    p = make_params()
    model, guide = _local_pair(p, True)
    with pytest.raises(ValueError, match=r"pyro.factor site 'soft' depends on local latents or data.*symmetric=False"):
        Trace_MIM().loss(model, guide, torch.randn(5))


def test_factor_on_observed_data_is_refused_on_the_decoder_side():
    def model(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)
            pyro.factor("robust", -torch.log1p((x - z) ** 2))  # a custom likelihood term

    def guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(0.5 * x, 1.0))

    with pytest.raises(ValueError, match="pyro.factor site 'robust'"):
        Trace_MIM().loss(model, guide, torch.randn(5))
    assert math.isfinite(Trace_MIM(symmetric=False).loss(model, guide, torch.randn(5)))


# ----------------------------------------------------------------------------- masks and scales
W, B, SP, A, C, S = 1.3, 0.4, 0.6, 0.5, -0.2, 0.45


def _weighted_model(weights):
    """The linear-Gaussian model with per-datum weights on the observed site's
    log-density (a mask times a scale), applied with poutine handlers."""
    mask, scale = weights

    def model(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            with poutine.mask(mask=mask), poutine.scale(scale=scale):
                pyro.sample("x", dist.Normal(W * z + B, SP), obs=x)

    return model


def _guide(x):
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("z", dist.Normal(A * x + C, S))


def _manual_weighted_mim(x, weight, m):
    """Plain-torch Monte Carlo of the symmetric MIM loss (one-sample marginal)
    with ``weight`` multiplying every log p(x|z) term."""
    N = torch.distributions.Normal
    n = x.shape[0]

    def log_p(z, xv):
        return N(0.0, 1.0).log_prob(z) + weight * N(W * z + B, SP).log_prob(xv)

    def log_q(z, xv):
        return N(A * xv + C, S).log_prob(z)

    xs = x.expand(m, n)
    z = N(A * xs + C, S).sample()
    enc = (-0.5 * 2.0 * log_p(z, xs)).sum(-1)
    z = N(0.0, 1.0).sample((m, n))
    gx = N(W * z + B, SP).sample()
    r = N(A * gx + C, S).sample()
    dec = (-0.5 * (log_p(z, gx) + log_q(z, gx) + log_p(r, gx) - log_q(r, gx))).sum(-1)
    total = 0.5 * (enc + dec)
    return total.mean(), total.std() / m**0.5


def test_mask_and_scale_on_an_observed_site_weight_its_terms_on_both_sides():
    torch.manual_seed(6)
    x = torch.randn(12)
    mask = torch.arange(12) % 3 != 0
    scale = 0.3
    loss_fn = Trace_MIM(num_particles=1000, vectorize_particles=True, max_plate_nesting=1)
    ours = torch.tensor([loss_fn.loss(_weighted_model((mask, scale)), _guide, x) for _ in range(6)])
    manual, manual_se = _manual_weighted_mim(x, mask.float() * scale, 100_000)
    se = (ours.var() / ours.shape[0] + manual_se**2) ** 0.5
    assert abs(ours.mean() - manual) < 4.5 * se, (ours.mean(), manual, se)
    # and the weight matters: unweighted is many standard errors away
    unweighted, _ = _manual_weighted_mim(x, torch.ones(12), 100_000)
    assert abs(unweighted - manual) > 20 * se


# ----------------------------------------------------------------------------- obs_mask
LOADING = torch.tensor([1.0, -1.0])


def _masked_model(x, m):
    with pyro.plate("data", x.shape[-2], dim=-2):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("features", 2, dim=-1):
            pyro.sample("x", dist.Normal(z * LOADING, 0.5), obs=x, obs_mask=m)


def _masked_guide(x, m):
    with pyro.plate("data", x.shape[-2], dim=-2):
        z = pyro.sample("z", dist.Normal(0.3 * (x * m).sum(-1, keepdim=True), 0.6))
        with pyro.plate("features", 2, dim=-1):
            pyro.sample("x_unobserved", dist.Normal(0.8 * z * LOADING, 0.7).mask(~m))


def _manual_masked_mim(x, m, n_mc):
    """Plain-torch Monte Carlo of symmetric MIM (one-sample marginal) with the
    missing entries as local latents imputed by the guide."""
    N = torch.distributions.Normal
    mf = m.float()

    def log_p(z, xo, xu):  # z (..., n, 1); observed and imputed entries (..., n, 2)
        px = N(z * LOADING, 0.5)
        return N(0.0, 1.0).log_prob(z).sum(-1) + (mf * px.log_prob(xo) + (1 - mf) * px.log_prob(xu)).sum(-1)

    def q_z(xo):
        return N(0.3 * (xo * mf).sum(-1, keepdim=True), 0.6)

    def q_u(z):
        return N(0.8 * z * LOADING, 0.7)

    def log_q(z, xo, xu):
        return q_z(xo).log_prob(z).sum(-1) + ((1 - mf) * q_u(z).log_prob(xu)).sum(-1)

    xs = x.expand((n_mc,) + x.shape)
    z = q_z(xs).sample()
    xu = q_u(z).sample()
    enc = -0.5 * 2.0 * log_p(z, xs, xu).sum(-1)
    z = N(0.0, 1.0).sample((n_mc,) + x.shape[:-1] + (1,))
    go, gu = N(z * LOADING, 0.5).sample(), N(z * LOADING, 0.5).sample()
    r = q_z(go).sample()
    ru = q_u(r).sample()
    lqx = log_p(r, go, ru) - log_q(r, go, ru)
    dec = -0.5 * (log_p(z, go, gu) + log_q(z, go, gu) + lqx).sum(-1)
    total = 0.5 * (enc + dec)
    return total.mean(), total.std() / n_mc**0.5


def test_obs_mask_imputes_missing_entries_as_local_latents_on_both_sides():
    torch.manual_seed(9)
    x = torch.randn(8, 2)
    m = torch.rand(8, 2) > 0.4
    loss_fn = Trace_MIM(num_particles=1000, vectorize_particles=True, max_plate_nesting=2)
    ours = torch.tensor([loss_fn.loss(_masked_model, _masked_guide, x, m) for _ in range(6)])
    manual, manual_se = _manual_masked_mim(x, m, 100_000)
    se = (ours.var() / ours.shape[0] + manual_se**2) ** 0.5
    assert abs(ours.mean() - manual) < 4.5 * se, (ours.mean(), manual, se)
