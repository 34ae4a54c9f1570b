"""Trace_MIM on the kinds of Pyro programs users write: subsampled plates,
discrete latents in the guide and the model, two latent levels with two
observed sites, PyroModules through SVI and the ELBOModule path."""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from mc import assert_unbiased, repeated, z_scores
from pyro.infer import SVI
from pyro.nn import PyroModule, PyroParam
from test_trace_mim_linear_gaussian import NAMES, exact_loss, make_params

from pyromim import JitTrace_MIM, Trace_MIM

NODES, WEIGHTS = (torch.tensor(v, dtype=torch.float64) for v in np.polynomial.hermite.hermgauss(60))
WEIGHTS = WEIGHTS / math.sqrt(math.pi)


# ----------------------------------------------------------------------------- subsampling
def test_subsampled_plate_has_the_full_batch_expected_loss():
    """Minibatches of 10 from 40 data points, the guide indexing the full data
    set itself: the expected loss and gradients equal the full-batch closed form."""
    torch.manual_seed(1)
    x = torch.randn(40) * 1.2 + 0.3
    p = make_params()

    def model(x):
        with pyro.plate("data", x.shape[-1], subsample_size=10) as idx:
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(p["w"] * z + p["b"], p["sp"]), obs=x[idx])

    def guide(x):
        with pyro.plate("data", x.shape[-1], subsample_size=10) as idx:
            pyro.sample("z", dist.Normal(p["a"] * x[..., idx] + p["c"], p["s"]))

    loss_fn = Trace_MIM(num_particles=20, vectorize_particles=True, max_plate_nesting=1)
    leaves = list(p.values())

    def estimate():
        loss = loss_fn.differentiable_loss(model, guide, x)
        return torch.stack([loss.detach()] + list(torch.autograd.grad(loss, leaves)))

    samples = repeated(estimate, 80)
    exact = exact_loss(p, x, True, "marginal", 1.0)
    target = torch.stack([exact.detach()] + list(torch.autograd.grad(exact, leaves)))
    assert_unbiased(samples, target, names=["loss"] + NAMES)


# ----------------------------------------------------------------------------- discrete latent
def _discrete_params():
    return {
        "theta": torch.tensor(0.3, requires_grad=True),  # logit of p(c = 1)
        "mu": torch.tensor([-1.0, 1.2], requires_grad=True),
        "sigma": torch.tensor(0.8, requires_grad=True),
        "a": torch.tensor(1.5, requires_grad=True),  # q(c = 1 | x) = sigmoid(a x + b)
        "b": torch.tensor(-0.2, requires_grad=True),
    }


def _discrete_model_guide(p):
    def model(x):
        with pyro.plate("data", x.shape[-1]):
            c = pyro.sample("c", dist.Bernoulli(logits=p["theta"]))
            pyro.sample("x", dist.Normal(p["mu"][c.long()], p["sigma"]), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("c", dist.Bernoulli(logits=p["a"] * x + p["b"]))

    return model, guide


def _exact_discrete(p, x, beta, fixed_prior_draws=False):
    """Enumerate c on both sides; integrate generated x by Gauss-Hermite with
    nodes mu_c + sqrt(2) sigma t (a reparameterisation, so autograd through the
    nodes gives the pathwise part of the gradient exactly). ``fixed_prior_draws``
    holds the decoder side's sampling weights p(c) fixed: the target of the
    default ``decoder_gradient="detach"``."""
    x = x.double()
    theta, mu, sigma = p["theta"].double(), p["mu"].double(), p["sigma"].double()
    a, b = p["a"].double(), p["b"].double()
    log_pc = torch.stack([F.logsigmoid(-theta), F.logsigmoid(theta)])  # (2,)

    def log_px(xv, c):
        return -0.5 * math.log(2 * math.pi) - torch.log(sigma) - (xv - mu[c]) ** 2 / (2 * sigma**2)

    def log_q(xv):  # (..., 2)
        logit = a * xv + b
        return torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], -1)

    def log_joint(xv):  # (..., 2)
        return torch.stack([log_pc[c] + log_px(xv, c) for c in (0, 1)], -1)

    q = log_q(x).exp()
    enc = (q * -0.5 * (1 + beta) * log_joint(x)).sum()
    dec = 0.0
    for c in (0, 1):
        xv = mu[c] + math.sqrt(2) * sigma * NODES
        lq = log_q(xv)
        lqx = (lq.exp() * (log_joint(xv) - lq)).sum(-1)
        term = log_pc[c] + log_px(xv, c) + beta * (lq[..., c] + lqx)
        weight = (log_pc[c].detach() if fixed_prior_draws else log_pc[c]).exp()
        dec = dec + weight * (WEIGHTS * -0.5 * term).sum()
    return 0.5 * (enc + x.shape[0] * dec)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_discrete_latents_get_unbiased_score_function_gradients(beta):
    """Score-function terms on the encoder side (guide draw of c), the decoder
    side (prior draw of c) and the re-encoding draw, against enumeration."""
    torch.manual_seed(3)
    x = torch.cat([torch.randn(10) - 1.0, torch.randn(10) + 1.2])
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    loss_fn = Trace_MIM(
        beta=beta, decoder_gradient="score", num_particles=400, vectorize_particles=True, max_plate_nesting=1
    )
    leaves = list(p.values())

    def estimate():
        loss = loss_fn.differentiable_loss(model, guide, x)
        grads = torch.autograd.grad(loss, leaves)
        return torch.cat([loss.detach().reshape(1)] + [g.reshape(-1) for g in grads])

    samples = repeated(estimate, 20)
    exact = _exact_discrete(p, x, beta)
    grads = torch.autograd.grad(exact, leaves)
    target = torch.cat([exact.detach().reshape(1)] + [g.reshape(-1) for g in grads]).float()
    assert_unbiased(samples, target, names=["loss", "theta", "mu0", "mu1", "sigma", "a", "b"])


def test_default_holds_the_decoder_sides_discrete_prior_draws_fixed():
    """Default estimator on the same program: unbiased for the gradient with
    the prior draws of c held fixed, and off from the full gradient in theta
    (the prior's logit, which only the dropped score term moves)."""
    torch.manual_seed(3)
    x = torch.cat([torch.randn(10) - 1.0, torch.randn(10) + 1.2])
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    loss_fn = Trace_MIM(num_particles=400, vectorize_particles=True, max_plate_nesting=1)
    leaves = list(p.values())

    def estimate():
        loss = loss_fn.differentiable_loss(model, guide, x)
        grads = torch.autograd.grad(loss, leaves)
        return torch.cat([loss.detach().reshape(1)] + [g.reshape(-1) for g in grads])

    def target(fixed):
        exact = _exact_discrete(p, x, 1.0, fixed_prior_draws=fixed)
        grads = torch.autograd.grad(exact, leaves)
        return torch.cat([exact.detach().reshape(1)] + [g.reshape(-1) for g in grads]).float()

    samples = repeated(estimate, 20)
    names = ["loss", "theta", "mu0", "mu1", "sigma", "a", "b"]
    assert_unbiased(samples, target(True), names=names)
    assert z_scores(samples, target(False))[1].abs() > 8.0


# ----------------------------------------------------------------------------- two levels
def _hier_model(x1, x2):
    with pyro.plate("data", x1.shape[-1]):
        z2 = pyro.sample("z2", dist.Normal(0.0, 1.0))
        z1 = pyro.sample("z1", dist.Normal(0.8 * z2, 0.7))
        pyro.sample("x1", dist.Normal(1.5 * z1, 0.5), obs=x1)
        pyro.sample("x2", dist.Normal(z1 - z2, 0.6), obs=x2)


def _hier_guide(x1, x2):
    with pyro.plate("data", x1.shape[-1]):
        z1 = pyro.sample("z1", dist.Normal(0.4 * x1 + 0.2 * x2, 0.5))
        pyro.sample("z2", dist.Normal(0.5 * z1 + 0.1 * x2, 0.6))


def _manual_mim(x1, x2, beta, m):
    """Independent plain-torch Monte Carlo of the symmetric MIM loss with the
    one-sample marginal, straight from the definitions (no Pyro)."""
    N = torch.distributions.Normal
    n = x1.shape[0]

    def log_p(z2, z1, a, b):
        return (
            N(0.0, 1.0).log_prob(z2)
            + N(0.8 * z2, 0.7).log_prob(z1)
            + N(1.5 * z1, 0.5).log_prob(a)
            + N(z1 - z2, 0.6).log_prob(b)
        )

    def encode(a, b):
        z1 = N(0.4 * a + 0.2 * b, 0.5).sample()
        z2 = N(0.5 * z1 + 0.1 * b, 0.6).sample()
        return z1, z2

    def log_q(z1, z2, a, b):
        return N(0.4 * a + 0.2 * b, 0.5).log_prob(z1) + N(0.5 * z1 + 0.1 * b, 0.6).log_prob(z2)

    xa, xb = x1.expand(m, n), x2.expand(m, n)
    z1, z2 = encode(xa, xb)
    enc = (-0.5 * (1 + beta) * log_p(z2, z1, xa, xb)).sum(-1)  # (m,)
    z2 = N(0.0, 1.0).sample((m, n))
    z1 = N(0.8 * z2, 0.7).sample()
    ga, gb = N(1.5 * z1, 0.5).sample(), N(z1 - z2, 0.6).sample()
    r1, r2 = encode(ga, gb)
    lqx = log_p(r2, r1, ga, gb) - log_q(r1, r2, ga, gb)
    dec = (-0.5 * (log_p(z2, z1, ga, gb) + beta * (log_q(z1, z2, ga, gb) + lqx))).sum(-1)
    total = 0.5 * (enc + dec)
    return total.mean(), total.std() / m**0.5


@pytest.mark.parametrize("beta", [1.0, 0.4])
def test_two_levels_and_two_observed_sites_match_an_independent_computation(beta):
    torch.manual_seed(4)
    x1, x2 = torch.randn(15), torch.randn(15)
    loss_fn = Trace_MIM(beta=beta, num_particles=500, vectorize_particles=True, max_plate_nesting=1)
    ours = repeated(lambda: torch.tensor([loss_fn.loss(_hier_model, _hier_guide, x1, x2)]), 16)
    manual, manual_se = _manual_mim(x1, x2, beta, 200_000)
    se = (ours.std() ** 2 / ours.shape[0] + manual_se**2) ** 0.5
    assert abs(ours.mean() - manual) < 4.5 * se, (ours.mean(), manual, se)


# ----------------------------------------------------------------------------- SVI and modules
class TinyVAE(PyroModule):
    def __init__(self, d=4, k=2):
        super().__init__()
        self.dec = PyroModule[torch.nn.Linear](k, d)
        self.enc = PyroModule[torch.nn.Linear](d, 2 * k)
        self.k = k

    def model(self, x):
        with pyro.plate("data", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.k), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.dec(z)).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[-2]):
            loc, log_scale = self.enc(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


OPTIONS = [
    dict(),
    dict(symmetric=False),
    dict(symmetric=False, q_x="data"),
    dict(num_particles=3),
    dict(num_particles=3, vectorize_particles=True),
    dict(decoder_gradient="detach"),
    dict(baseline_decay=None, beta=0.3),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("cls", [Trace_MIM, JitTrace_MIM])
def test_svi_step_with_every_option_reduces_the_loss(cls, options):
    torch.manual_seed(0)
    vae = TinyVAE()
    x = torch.bernoulli(torch.full((32, 4), 0.3))
    x[:16] = 1 - x[:16]
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.05}), loss=cls(**options))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JIT must keep torch's tracer warnings quiet
        losses = [svi.step(x) for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-8:]) < np.mean(losses[:8])


def test_elbo_module_path_trains_a_learned_q_x_with_lightning_style_optimiser():
    """``Trace_MIM()(model, guide)`` returns an nn.Module whose parameters
    include a learned q(x), as Pyro's Lightning example optimises them."""

    class LogQX(PyroModule):
        def __init__(self):
            super().__init__()
            self.logits = PyroParam(torch.zeros(4))

        def forward(self, x):
            return dist.Bernoulli(logits=self.logits).to_event(1).log_prob(x)

    torch.manual_seed(0)
    vae, qx = TinyVAE(), LogQX()
    x = torch.bernoulli(torch.full((32, 4), 0.8))
    loss_module = Trace_MIM(q_x=qx)(vae.model, vae.guide)
    loss_module(x)  # creates parameters
    names = {n for n, _ in loss_module.named_parameters()}
    assert any(n.startswith("q_x.") for n in names), names
    opt = torch.optim.Adam(loss_module.parameters(), lr=0.05)
    before = qx.logits.detach().clone()
    for _ in range(30):
        opt.zero_grad()
        loss_module(x).backward()
        opt.step()
    # log q(x) is maximised at the data: the learned logits move towards the data's 80% ones
    assert (qx.logits.detach() > before).all()


def test_baselines_learn_only_from_training_steps():
    vae = TinyVAE()
    x = torch.bernoulli(torch.full((16, 4), 0.5))
    loss_fn = Trace_MIM(decoder_gradient="score")
    with torch.no_grad():
        loss_fn.differentiable_loss(vae.model, vae.guide, x)
    loss_fn.loss(vae.model, vae.guide, x)
    assert loss_fn.baselines == {}
    loss_fn.differentiable_loss(vae.model, vae.guide, x)
    assert set(loss_fn.baselines) == {"decoder:model:x"}


def test_baselines_travel_with_a_saved_param_store(tmp_path):
    vae = TinyVAE()
    x = torch.bernoulli(torch.full((16, 4), 0.5))
    pyro.clear_param_store()
    loss_fn = Trace_MIM(decoder_gradient="score")
    for _ in range(3):
        loss_fn.differentiable_loss(vae.model, vae.guide, x)
    saved = dict(loss_fn.baselines)
    assert set(saved) == {"decoder:model:x"} and all(math.isfinite(v) for v in saved.values())
    pyro.get_param_store().save(tmp_path / "store.pt")
    pyro.clear_param_store()
    fresh = Trace_MIM(decoder_gradient="score")
    assert fresh.baselines == {}  # cleared with the store, as Pyro's own baselines are
    pyro.get_param_store().load(tmp_path / "store.pt")
    assert fresh.baselines == saved
    del fresh.baselines["decoder:model:x"]
    assert "__mim_baseline_decoder:model:x" not in pyro.get_param_store()


def test_loss_and_grads_backpropagates_per_particle_to_the_same_gradient():
    """Particle by particle (as Trace_ELBO does) gives the gradient of the
    whole surrogate, baselines included, for the same draws."""
    x = torch.cat([torch.randn(10) - 1.0, torch.randn(10) + 1.2])
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    leaves = list(p.values())
    grads = []
    for per_particle in (True, False):
        pyro.clear_param_store()  # the baselines live there: start each loss afresh
        loss_fn = Trace_MIM(decoder_gradient="score", num_particles=3, max_plate_nesting=1)
        pyro.set_rng_seed(8)
        loss_fn.loss_and_grads(model, guide, x)  # sets the running-mean baselines
        for leaf in leaves:
            leaf.grad = None
        pyro.set_rng_seed(9)
        if per_particle:
            value = loss_fn.loss_and_grads(model, guide, x)
        else:
            loss = loss_fn.differentiable_loss(model, guide, x)
            loss.backward()
            value = loss.item()
        assert loss_fn.baselines  # the score terms really had baselines
        grads.append((value, torch.cat([leaf.grad.reshape(-1) for leaf in leaves])))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-6)
