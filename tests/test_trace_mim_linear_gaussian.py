"""Trace_MIM's value and gradients against closed forms on a linear-Gaussian model.

Model ``z ~ N(0, 1)``, ``x | z ~ N(w z + b, sp)``; guide ``q(z|x) = N(a x + c, s)``.
Every expectation in the MIM loss is a Gaussian moment, so the expected loss is
an explicit function of ``(w, b, sp, a, c, s)`` and its gradient comes from
autograd on that formula. The estimator is checked against both.
"""

import math

import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import NAMES, make_model_guide, make_params
from mc import assert_unbiased, repeated

from pyromim import Trace_MIM

LOG2PI = math.log(2 * math.pi)


def exact_loss(p, x, symmetric, q_x, beta, log_qx=None):
    """Closed-form expected MIM loss, summed over the data ``x``."""
    w, b, sp, a, c, s = (p[n] for n in NAMES)
    n = x.shape[0]
    m = a * x + c
    # encoder side: z ~ N(m, s^2) at each datum
    e_log_px_z = -0.5 * torch.log(2 * math.pi * sp**2) - ((x - w * m - b) ** 2 + w**2 * s**2) / (2 * sp**2)
    e_log_pz = -0.5 * LOG2PI - (m**2 + s**2) / 2
    e_log_q = -0.5 * torch.log(2 * math.pi * s**2) - 0.5
    if q_x == "marginal":
        enc = (-0.5 * (1 + beta) * (e_log_px_z + e_log_pz)).sum()
    elif q_x == "data":
        enc = (-0.5 * (e_log_px_z + e_log_pz + beta * e_log_q)).sum()
    else:  # learned: log q(x) = N(x; mu0, sd0)
        mu0, sd0 = log_qx
        lqx = -0.5 * torch.log(2 * math.pi * sd0**2) - (x - mu0) ** 2 / (2 * sd0**2)
        enc = (-0.5 * (e_log_px_z + e_log_pz + beta * (e_log_q + lqx))).sum()
    if not symmetric:
        return enc
    # decoder side: z ~ N(0,1), x = w z + b + sp eps; x ~ N(b, V) marginally
    var_x = w**2 + sp**2
    d_log_px_z = -0.5 * torch.log(2 * math.pi * sp**2) - 0.5
    d_log_pz = -0.5 * LOG2PI - 0.5
    resid2 = (1 - a * w) ** 2 + (a * b + c) ** 2 + a**2 * sp**2  # E (z - a x - c)^2
    d_log_q = -0.5 * torch.log(2 * math.pi * s**2) - resid2 / (2 * s**2)
    if q_x == "marginal":
        # E_x E_{z'~q(.|x)} [log p(x|z') + log p(z') - log q(z'|x)]
        mean_r = (1 - w * a) * b - w * c - b
        e_r2 = mean_r**2 + (1 - w * a) ** 2 * var_x
        e_m2 = (a * b + c) ** 2 + a**2 * var_x
        d_log_qx = (
            -0.5 * torch.log(2 * math.pi * sp**2)
            - (e_r2 + w**2 * s**2) / (2 * sp**2)
            - 0.5 * LOG2PI
            - (e_m2 + s**2) / 2
            + 0.5 * torch.log(2 * math.pi * s**2)
            + 0.5
        )
    else:
        mu0, sd0 = log_qx
        d_log_qx = -0.5 * torch.log(2 * math.pi * sd0**2) - ((b - mu0) ** 2 + var_x) / (2 * sd0**2)
    dec = n * -0.5 * (d_log_px_z + d_log_pz + beta * (d_log_q + d_log_qx))
    return 0.5 * (enc + dec)


class GaussianQX(torch.nn.Module):
    """A learned log q(x) = N(x; mu0, sd0) with per-datum output."""

    def __init__(self):
        super().__init__()
        self.mu0 = torch.nn.Parameter(torch.tensor(0.3))
        self.log_sd0 = torch.nn.Parameter(torch.tensor(0.2))

    def forward(self, x):
        return dist.Normal(self.mu0, self.log_sd0.exp()).log_prob(x)


CONFIGS = [
    # (symmetric, q_x, beta)
    (True, "marginal", 1.0),
    (True, "marginal", 0.5),
    (False, "marginal", 1.0),
    (False, "marginal", 0.3),
    (False, "data", 1.0),
    (False, "data", 0.3),
    (True, "learned", 1.0),
    (True, "learned", 0.5),
    (False, "learned", 0.5),
]


@pytest.mark.parametrize("symmetric,q_x,beta", CONFIGS)
def test_value_and_gradients_match_closed_form(symmetric, q_x, beta):
    torch.manual_seed(1)
    x = torch.randn(40) * 1.2 + 0.3
    p = make_params()
    model, guide = make_model_guide(p)
    qx_module = GaussianQX() if q_x == "learned" else None
    loss_fn = Trace_MIM(
        symmetric=symmetric,
        q_x=qx_module if qx_module is not None else q_x,
        beta=beta,
        num_particles=400,
        vectorize_particles=True,
        max_plate_nesting=1,
    )
    leaves = list(p.values())
    names = list(NAMES)
    log_qx = None
    if qx_module is not None:
        leaves += [qx_module.mu0, qx_module.log_sd0]
        names += ["mu0", "log_sd0"]
        log_qx = (qx_module.mu0, qx_module.log_sd0.exp())

    def estimate():
        loss = loss_fn.differentiable_loss(model, guide, x)
        grads = torch.autograd.grad(loss, leaves)
        return torch.stack([loss.detach()] + [g.detach() for g in grads])

    samples = repeated(estimate, 24)
    exact = exact_loss(p, x, symmetric, q_x, beta, log_qx)
    exact_grads = torch.autograd.grad(exact, leaves)
    target = torch.stack([exact.detach()] + [g.detach() for g in exact_grads])
    assert_unbiased(samples, target, names=["loss"] + names)


def test_sequential_and_vectorised_particles_agree_statistically():
    torch.manual_seed(2)
    x = torch.randn(30)
    p = make_params()
    model, guide = make_model_guide(p)
    seq = Trace_MIM(num_particles=50)
    vec = Trace_MIM(num_particles=50, vectorize_particles=True)
    exact = exact_loss(p, x, True, "marginal", 1.0).detach()
    for loss_fn in (seq, vec):
        values = repeated(lambda: torch.tensor([loss_fn.loss(model, guide, x)]), 12)
        assert_unbiased(values, exact.reshape(1))
