"""Enumerated discrete latents under Trace_MIM, against brute-force enumeration.

Guide side: the encoder side's expectation over an enumerated ``q(c|x)`` is
exact (A-MIM has no randomness left, so value and gradients equal the
enumerated closed form to rounding), and symmetric MIM stays unbiased for the
closed form of ``test_trace_mim_programs``. Model side: ``log p(x, z)`` is the
joint with the enumerated site summed out, on both sides, checked on each draw
against an explicit log-sum-exp over the site's values.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from mc import assert_unbiased, repeated
from pyro.infer import config_enumerate
from test_trace_mim_programs import _discrete_model_guide, _discrete_params, _exact_discrete

from pyromim import JitTrace_MIM, Trace_MIM

X = torch.cat([torch.linspace(-2.5, 0.5, 8), torch.linspace(-0.3, 2.8, 8)])


def _grads(loss, leaves, retain_graph=False):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, leaves, retain_graph=retain_graph)])


# ----------------------------------------------------------------------------- guide side
@pytest.mark.parametrize("beta", [1.0, 0.4])
@pytest.mark.parametrize("q_x", ["marginal", "data"])
def test_guide_enumeration_makes_the_asymmetric_loss_exact(beta, q_x):
    """A-MIM over a guide-enumerated c: sum_c q(c|x) l(x, c), value and gradients."""
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    leaves = list(p.values())
    loss = Trace_MIM(symmetric=False, q_x=q_x, beta=beta).differentiable_loss(model, config_enumerate(guide), X)

    theta, mu, sigma, a, b = (p[k] for k in ("theta", "mu", "sigma", "a", "b"))
    log_pc = torch.stack([F.logsigmoid(-theta), F.logsigmoid(theta)])
    log_joint = torch.stack([log_pc[c] + dist.Normal(mu[c], sigma).log_prob(X) for c in (0, 1)], -1)
    logit = a * X + b
    log_q = torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], -1)
    # l(x, c) = -1/2 [log p(x, c) + beta (log q(c|x) + log q(x))]; the marginal's
    # one-sample estimate at c' = c cancels log q(c|x); q_x="data" drops log q(x)
    cost = -0.5 * (1 + beta) * log_joint if q_x == "marginal" else -0.5 * (log_joint + beta * log_q)
    exact = (log_q.exp() * cost).sum()

    assert loss.item() == pytest.approx(exact.item(), rel=1e-6)
    torch.testing.assert_close(_grads(loss, leaves), _grads(exact, leaves), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decoder_gradient", ["score", "detach"])
def test_guide_enumeration_keeps_symmetric_mim_unbiased(decoder_gradient):
    """The decoder side draws c from the prior and re-encodes by sampling; the
    whole loss and its gradients match the closed form (Gauss-Hermite over x,
    enumeration over c), with the encoder side's variance gone."""
    torch.manual_seed(5)
    x = torch.cat([torch.randn(10) - 1.0, torch.randn(10) + 1.2])
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    loss_fn = Trace_MIM(
        decoder_gradient=decoder_gradient, num_particles=400, vectorize_particles=True, max_plate_nesting=1
    )
    leaves = list(p.values())

    def estimate():
        loss = loss_fn.differentiable_loss(model, config_enumerate(guide), x)
        return torch.cat([loss.detach().reshape(1), _grads(loss, leaves)])

    samples = repeated(estimate, 20)
    exact = _exact_discrete(p, x, 1.0, fixed_prior_draws=decoder_gradient == "detach")
    target = torch.cat([exact.detach().reshape(1), _grads(exact, leaves)]).float()
    assert_unbiased(samples, target, names=["loss", "theta", "mu0", "mu1", "sigma", "a", "b"])


def test_guide_enumeration_removes_the_encoder_sides_score_function_noise():
    """Same program, A-MIM: enumerated gradients do not vary; sampled ones do."""
    p = _discrete_params()
    model, guide = _discrete_model_guide(p)
    leaves = list(p.values())

    def spread(g):
        loss_fn = Trace_MIM(symmetric=False)
        return repeated(lambda: _grads(loss_fn.differentiable_loss(model, g, X), leaves), 30).std(0)

    enumerated, sampled = spread(config_enumerate(guide)), spread(guide)
    assert enumerated.max() < 1e-5
    assert sampled[-2:].min() > 0.1  # the encoder's a and b, which only the score function moves


# ----------------------------------------------------------------------------- model side
def _mix_model(x):
    with pyro.plate("data", x.shape[-1]):
        c = pyro.sample("c", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(2.0 * c - 1.0, 1.0), obs=x)


def _mix_guide(x):
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("c", dist.Bernoulli(torch.sigmoid(x)))


def _mixture_params():
    return {
        "theta": torch.tensor(0.4, requires_grad=True),  # logit of p(c = 1)
        "mu": torch.tensor([-1.5, 1.0], requires_grad=True),
        "w": torch.tensor(0.8, requires_grad=True),
        "sigma": torch.tensor(0.6, requires_grad=True),
        "a": torch.tensor(0.5, requires_grad=True),  # q(z|x) = N(a x + b, s)
        "b": torch.tensor(0.1, requires_grad=True),
        "s": torch.tensor(0.7, requires_grad=True),
    }


def _mixture_program(p):
    """c ~ Bernoulli (enumerated in the model, no guide site), z ~ N(0, 1),
    x ~ N(mu_c + w z, sigma); the guide encodes z only."""

    @config_enumerate
    def model(x):
        with pyro.plate("data", x.shape[-1]):
            c = pyro.sample("c", dist.Bernoulli(logits=p["theta"]))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(p["mu"][c.long()] + p["w"] * z, p["sigma"]), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(p["a"] * x + p["b"], p["s"]))

    return model, guide


def _log_joint(p, x, z):
    """log p(x, z) with c summed out by an explicit log-sum-exp."""
    log_pc = torch.stack([F.logsigmoid(-p["theta"]), F.logsigmoid(p["theta"])])
    terms = [log_pc[c] + dist.Normal(p["mu"][c] + p["w"] * z, p["sigma"]).log_prob(x) for c in (0, 1)]
    return dist.Normal(0.0, 1.0).log_prob(z) + torch.logsumexp(torch.stack(terms, -1), -1)


def test_model_enumeration_sums_the_site_out_of_the_asymmetric_loss():
    p = _mixture_params()
    model, guide = _mixture_program(p)
    leaves = list(p.values())
    loss_fn = Trace_MIM(symmetric=False)
    loss_fn.loss(model, guide, X)  # the first call finds the enumerated site
    pyro.set_rng_seed(11)
    loss = loss_fn.differentiable_loss(model, guide, X)
    pyro.set_rng_seed(11)
    z = dist.Normal(p["a"] * X + p["b"], p["s"]).rsample()  # the guide's draw, reproduced
    exact = -0.5 * 2.0 * _log_joint(p, X, z).sum()  # -1/2 (1 + beta) log p(x, z), z' = z
    assert loss.item() == pytest.approx(exact.item(), rel=1e-6)
    torch.testing.assert_close(_grads(loss, leaves), _grads(exact, leaves), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_model_enumeration_sums_the_site_out_on_the_decoder_side(beta):
    """Each draw of the symmetric loss against the definition evaluated at the
    same draws: encoder z ~ q(z|x); decoder (c, z, x) ~ p with c then summed
    out of log p(x, z); re-encoding z' ~ q(z|x_gen)."""
    p = _mixture_params()
    model, guide = _mixture_program(p)
    leaves = list(p.values())
    loss_fn = Trace_MIM(beta=beta)
    for seed in range(3):
        pyro.set_rng_seed(seed)
        traces = next(iter(loss_fn._get_traces(model, guide, (X,), {})))
        loss, surrogate, _ = loss_fn._particle(traces, beta)

        z_enc = traces.enc_guide.nodes["z"]["value"]
        z_gen, x_gen = traces.dec_model.nodes["z"]["value"], traces.dec_model.nodes["x"]["value"]
        z_re = traces.re_guide.nodes["z"]["value"]

        def log_q(z, x):
            return dist.Normal(p["a"] * x + p["b"], p["s"]).log_prob(z)

        enc = -0.5 * (1 + beta) * _log_joint(p, X, z_enc)
        log_qx = _log_joint(p, x_gen, z_re) - log_q(z_re, x_gen)
        dec = -0.5 * (_log_joint(p, x_gen, z_gen) + beta * (log_q(z_gen, x_gen) + log_qx))
        exact = 0.5 * (enc.sum() + dec.sum())
        assert loss.item() == pytest.approx(exact.item(), rel=1e-6)
        torch.testing.assert_close(_grads(surrogate, leaves, True), _grads(exact, leaves), rtol=1e-5, atol=1e-5)


def test_model_enumeration_matches_the_written_out_mixture_in_expectation():
    """The same joint written with c inside the observation's distribution
    (MixtureSameFamily, nothing enumerated) has the same expected loss."""
    p = _mixture_params()
    model, guide = _mixture_program(p)

    def mixture_model(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            weights = dist.Categorical(logits=torch.stack([-p["theta"] / 2, p["theta"] / 2]))
            components = dist.Normal(p["mu"] + p["w"] * z.unsqueeze(-1), p["sigma"])
            pyro.sample("x", dist.MixtureSameFamily(weights, components), obs=x)

    pyro.set_rng_seed(0)
    loss_fn = Trace_MIM(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    with torch.no_grad():
        enumerated = torch.tensor([loss_fn.loss(model, guide, X) for _ in range(40)])
        written = torch.tensor([loss_fn.loss(mixture_model, guide, X) for _ in range(40)])
    se = (enumerated.var() / 40 + written.var() / 40).sqrt()
    assert (enumerated.mean() - written.mean()).abs() < 4.5 * se
    assert enumerated.var() < written.var()  # the encoder side's sum over c is exact


def test_enumerated_losses_compile_to_the_same_values():
    """JitTrace_MIM (parameters from the param store, as JitTrace_ELBO needs)."""

    def guide(x):
        logit = pyro.param("qa", torch.tensor(1.5)) * x + pyro.param("qb", torch.tensor(-0.2))
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("c", dist.Bernoulli(logits=logit))

    @config_enumerate
    def mixture(x):
        mu = pyro.param("mu", torch.tensor([-1.5, 1.0]))
        with pyro.plate("data", x.shape[-1]):
            c = pyro.sample("c", dist.Bernoulli(0.4))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(mu[c.long()] + 0.8 * z, 0.6), obs=x)

    def mixture_guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(pyro.param("za", torch.tensor(0.5)) * x, 0.7))

    pyro.clear_param_store()
    for m, g in ((_mix_model, config_enumerate(guide)), (mixture, mixture_guide)):
        for symmetric in (False, True):
            values = []
            for loss_fn in (Trace_MIM(symmetric=symmetric), JitTrace_MIM(symmetric=symmetric)):
                pyro.set_rng_seed(4)
                values.append([loss_fn.differentiable_loss(m, g, X).item() for _ in range(3)])
            assert values[0] == values[1]


# ----------------------------------------------------------------------------- refusals
def test_sequential_and_multiply_sampled_enumeration_are_refused_with_the_alternative():
    with pytest.raises(NotImplementedError, match="guide site 'c'.*'sequential'.*parallel"):
        Trace_MIM().loss(_mix_model, config_enumerate(_mix_guide, default="sequential"), X)
    with pytest.raises(NotImplementedError, match="guide site 'c'.*num_samples.*Drop num_samples"):
        Trace_MIM().loss(_mix_model, config_enumerate(_mix_guide, num_samples=4), X)
    assert math.isfinite(Trace_MIM().loss(_mix_model, config_enumerate(_mix_guide), X))  # the advice


def test_score_gradient_with_model_enumeration_is_refused_and_the_default_works():
    def no_guide(x):
        pass

    with pytest.raises(NotImplementedError, match=r"\['c'\].*decoder_gradient='detach'"):
        Trace_MIM(decoder_gradient="score").loss(config_enumerate(_mix_model), no_guide, X)
    assert math.isfinite(Trace_MIM().loss(config_enumerate(_mix_model), no_guide, X))


def test_an_enumerated_global_guide_site_needs_the_asymmetric_loss():
    """The decoder side holds globals at the encoder side's draw; an enumerated
    global has none. A-MIM sums over it exactly."""

    def model(x):
        k = pyro.sample("k", dist.Bernoulli(0.3))
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("x", dist.Normal(2.0 * k - 1.0, 1.0), obs=x)

    def guide(x):
        pyro.sample("k", dist.Bernoulli(pyro.param("qk", torch.tensor(0.6))))

    pyro.clear_param_store()
    with pytest.raises(ValueError, match="global site 'k'.*Drop the 'enumerate' hint.*symmetric=False"):
        Trace_MIM().loss(model, config_enumerate(guide), X)
    value = Trace_MIM(symmetric=False).loss(model, config_enumerate(guide), X)
    # globals keep ELBO terms with the encoder side's weight -(1 + beta)/2 = -1:
    # sum_k q(k) [-log p(k) - log p(x|k) + log q(k)]
    q = torch.tensor([0.4, 0.6])
    terms = [
        -math.log(pk) - dist.Normal(2.0 * k - 1.0, 1.0).log_prob(X).sum() + math.log(q[k])
        for k, pk in ((0, 0.7), (1, 0.3))
    ]
    assert value == pytest.approx(float(q[0] * terms[0] + q[1] * terms[1]), rel=1e-6)


# ----------------------------------------------------------------------------- Pyro's GMM tutorial
def _gmm_tutorial():
    """Pyro's Gaussian mixture tutorial as written there: the assignment summed
    out in the model, the globals fitted by AutoDelta."""
    from pyro import poutine
    from pyro.infer.autoguide import AutoDelta

    K = 2

    @config_enumerate
    def model(data):
        weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
        with pyro.plate("components", K):
            locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data)):
            assignment = pyro.sample("assignment", dist.Categorical(weights))
            pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)

    pyro.clear_param_store()
    guide = AutoDelta(poutine.block(model, expose=["weights", "locs", "scale"]))
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])
    guide(data)  # creates the parameters
    with torch.no_grad():  # a point away from the initialisation, as after some steps
        guide.locs_unconstrained.copy_(torch.tensor([0.5, 10.5]))
    return model, guide, data


def test_pyros_gmm_tutorial_asymmetric_mim_is_its_enumerated_elbo():
    """No local latent is left in the guide, so A-MIM's loss is -log p(x) plus
    the globals' ELBO terms: TraceEnum_ELBO's loss, value and gradient."""
    from pyro.infer import TraceEnum_ELBO

    model, guide, data = _gmm_tutorial()
    params = [p.unconstrained() for p in pyro.get_param_store().values()]
    mim = Trace_MIM(symmetric=False).differentiable_loss(model, guide, data)
    elbo = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, data)
    assert mim.item() == pytest.approx(elbo.item(), rel=1e-6)
    torch.testing.assert_close(_grads(mim, params), _grads(elbo, params), rtol=1e-5, atol=1e-5)


def test_pyros_gmm_tutorial_symmetric_mim_moves_the_globals_as_half_the_elbo():
    """Symmetric MIM holds the globals fixed on the decoder side: their
    gradient is the encoder side's, half the ELBO's."""
    from pyro.infer import TraceEnum_ELBO

    model, guide, data = _gmm_tutorial()
    params = [p.unconstrained() for p in pyro.get_param_store().values()]
    mim = Trace_MIM().differentiable_loss(model, guide, data)
    elbo = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, data)
    torch.testing.assert_close(_grads(mim, params), 0.5 * _grads(elbo, params), rtol=1e-5, atol=1e-5)
