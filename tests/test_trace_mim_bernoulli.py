"""Trace_MIM on Bernoulli observations against quadrature and enumeration.

Model ``z ~ N(0, 1)``, ``x_d | z ~ Bernoulli(sigmoid(W_d z + b_d))`` for
``d = 1..3``; guide ``q(z|x) = N(a . x + c, s)``. The decoder side draws binary
``x`` that cannot be reparameterised, so its gradient needs score-function
terms. The exact expected loss sums over all 8 binary vectors and integrates
every Gaussian expectation by Gauss-Hermite quadrature (80 nodes: the
integrands are smooth, the quadrature error is far below the Monte Carlo
error). Autograd through that formula, including through the weights
``p(x|z)``, gives the exact gradient the estimator must match on average.
"""

import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from mc import assert_unbiased, repeated, z_scores

from pyromim import Trace_MIM

D = 3
NODES, WEIGHTS = (torch.tensor(v, dtype=torch.float64) for v in np.polynomial.hermite.hermgauss(80))
WEIGHTS = WEIGHTS / math.sqrt(math.pi)
NAMES = [f"W{d}" for d in range(D)] + [f"b{d}" for d in range(D)] + [f"a{d}" for d in range(D)] + ["c", "s"]


def make_params():
    torch.manual_seed(5)
    return {
        "W": torch.tensor([1.2, -0.8, 0.5], requires_grad=True),
        "b": torch.tensor([0.3, -0.2, 0.6], requires_grad=True),
        "a": torch.tensor([0.7, -0.5, 0.4], requires_grad=True),
        "c": torch.tensor(-0.1, requires_grad=True),
        "s": torch.tensor(0.6, requires_grad=True),
    }


def leaves(p):
    return [p["W"], p["b"], p["a"], p["c"], p["s"]]


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def make_model_guide(p):
    def model(x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            logits = z.unsqueeze(-1) * p["W"] + p["b"]
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("z", dist.Normal((x * p["a"]).sum(-1) + p["c"], p["s"]))

    return model, guide


def log_px_given_z(x, z, p):
    """x: (..., D) binary, z broadcastable to x's batch shape."""
    logits = z.unsqueeze(-1) * p["W"].double() + p["b"].double()
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)


def log_normal(z, mean, sd):
    return -0.5 * math.log(2 * math.pi) - torch.log(sd) - (z - mean) ** 2 / (2 * sd**2)


def gauss_expect(fn, mean, sd):
    """E_{z ~ N(mean, sd^2)} fn(z) by Gauss-Hermite; mean may be batched."""
    z = mean.unsqueeze(-1) + math.sqrt(2) * sd * NODES  # (..., K)
    return (fn(z) * WEIGHTS).sum(-1)


def exact_loss(p, xs, beta, symmetric, fixed_generated=False):
    """Exact expected loss. ``fixed_generated`` holds the decoder-side
    sampling probabilities p(x|z) fixed, so autograd gives the target of
    ``decoder_gradient="detach"``: the gradient with generated x as data."""
    xs = xs.double()
    s = p["s"].double()
    enc_mean = (xs * p["a"].double()).sum(-1) + p["c"].double()

    def encoder_joint(x, mean):
        return gauss_expect(
            lambda z: log_px_given_z(x.unsqueeze(-2), z, p) + log_normal(z, 0.0, torch.tensor(1.0)),
            mean,
            s,
        )

    e_joint = encoder_joint(xs, enc_mean)
    enc = (-0.5 * (1 + beta) * e_joint).sum()
    if not symmetric:
        return enc
    patterns = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=torch.float64)
    pat_mean = (patterns * p["a"].double()).sum(-1) + p["c"].double()  # (8,)
    entropy_q = -0.5 * torch.log(2 * math.pi * s**2) - 0.5
    log_qx = encoder_joint(patterns, pat_mean) - entropy_q  # (8,) one-sample marginal, averaged
    z = math.sqrt(2) * NODES  # N(0,1) nodes, (K,)
    lp = log_px_given_z(patterns.unsqueeze(-2), z, p)  # (8, K)
    term = (
        lp
        + log_normal(z, 0.0, torch.tensor(1.0))
        + beta * (log_normal(z, pat_mean.unsqueeze(-1), s) + log_qx.unsqueeze(-1))
    )
    weights = (lp.detach() if fixed_generated else lp).exp()
    dec_per_sample = (WEIGHTS * (weights * -0.5 * term).sum(0)).sum()
    return 0.5 * (enc + xs.shape[0] * dec_per_sample)


def data():
    torch.manual_seed(11)
    return torch.bernoulli(torch.full((20, D), 0.5))


def estimates(p, xs, loss_fn, repeats):
    model, guide = make_model_guide(p)

    def one():
        loss = loss_fn.differentiable_loss(model, guide, xs)
        return torch.cat([loss.detach().reshape(1), flat(torch.autograd.grad(loss, leaves(p)))])

    return repeated(one, repeats)


def exact_vector(p, xs, beta, symmetric, fixed_generated=False):
    value = exact_loss(p, xs, beta, symmetric, fixed_generated)
    grads = torch.autograd.grad(value, leaves(p))
    return torch.cat([value.detach().reshape(1), flat(grads)]).float()


@pytest.mark.parametrize("beta,symmetric", [(1.0, True), (0.6, True), (1.0, False)])
def test_score_function_gradient_is_unbiased(beta, symmetric):
    p = make_params()
    xs = data()
    loss_fn = Trace_MIM(
        symmetric=symmetric,
        beta=beta,
        decoder_gradient="score",
        num_particles=500,
        vectorize_particles=True,
        max_plate_nesting=1,
    )
    samples = estimates(p, xs, loss_fn, repeats=20)
    assert_unbiased(samples, exact_vector(p, xs, beta, symmetric), names=["loss"] + NAMES)


@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_default_detached_decoder_draws_follow_the_fixed_sample_gradient(beta):
    """The default (the reference code's choice) differentiates the loss with
    the generated pixels held fixed: unbiased for that target (autograd through
    the exact loss with p(x|z) detached as sampling weights), and biased for
    the full gradient, off by many SEs in the decoder parameters."""
    p = make_params()
    xs = data()
    loss_fn = Trace_MIM(beta=beta, num_particles=500, vectorize_particles=True, max_plate_nesting=1)
    assert loss_fn.decoder_gradient == "detach"
    samples = estimates(p, xs, loss_fn, repeats=10)
    assert_unbiased(samples, exact_vector(p, xs, beta, True, fixed_generated=True), names=["loss"] + NAMES)
    z = z_scores(samples, exact_vector(p, xs, beta, True))
    decoder_params = z[1 : 1 + 2 * D]
    assert decoder_params.abs().max() > 8.0, z


def test_baseline_reduces_variance_without_bias():
    p = make_params()
    xs = data()
    spread = {}
    for decay in (None, 0.9):
        loss_fn = Trace_MIM(
            baseline_decay=decay,
            decoder_gradient="score",
            num_particles=200,
            vectorize_particles=True,
            max_plate_nesting=1,
        )
        estimates(p, xs, loss_fn, repeats=3)  # let the running mean settle
        samples = estimates(p, xs, loss_fn, repeats=12)
        spread[decay] = samples[:, 1 : 1 + 2 * D].std(0).mean()
    assert spread[0.9] < 0.8 * spread[None], spread


@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_leave_one_out_score_gradient_is_unbiased(beta):
    """Each draw's baseline is the mean cost of the other draws (20 data x 25 particles here):
    the gradient stays the exact one on average."""
    p = make_params()
    xs = data()
    loss_fn = Trace_MIM(
        beta=beta,
        decoder_gradient="score",
        score_baseline="leave_one_out",
        num_particles=25,
        vectorize_particles=True,
        max_plate_nesting=1,
    )
    samples = estimates(p, xs, loss_fn, repeats=200)
    assert_unbiased(samples, exact_vector(p, xs, beta, True), names=["loss"] + NAMES)


def test_leave_one_out_baseline_reduces_variance_and_keeps_no_running_mean():
    """Against no baseline the decoder's gradient spreads less (about half, as a settled
    running mean does); it needs no warm-up of a running mean, and leaves none in the
    param store."""
    p = make_params()
    xs = data()
    spread = {}
    for baseline, decay in (("none", None), ("leave_one_out", 0.9)):
        pyro.clear_param_store()
        loss_fn = Trace_MIM(
            baseline_decay=decay,
            score_baseline="running_mean" if baseline == "none" else baseline,
            decoder_gradient="score",
            num_particles=200,
            vectorize_particles=True,
            max_plate_nesting=1,
        )
        samples = estimates(p, xs, loss_fn, repeats=12)
        spread[baseline] = samples[:, 1 : 1 + 2 * D].std(0).mean()
        if baseline == "leave_one_out":
            assert dict(loss_fn.baselines) == {}
    assert spread["leave_one_out"] < 0.8 * spread["none"], spread
