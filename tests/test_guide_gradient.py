"""``Trace_MIM(guide_gradient="encoder_side")``: the decoder side trains the model only.

The guide's gradient must then be exactly the encoder side's, which is half of
A-MIM's on the same draws (the symmetric loss weights each side by 1/2), and the
model's gradient must be unchanged where the generated data are held fixed
anyway (discrete data under the default ``decoder_gradient="detach"``): the held
guide still passes gradients through the values it is evaluated at, here a
learned prior's draw.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.transforms import AffineAutoregressive
from pyro.nn import AutoRegressiveNN

from pyromim import JitTrace_MIM, Trace_MIM
from pyromim.infer.hold import held_distribution

X = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
MODEL_PARAMS = ("prior_loc", "weight")
GUIDE_PARAMS = ("enc_weight", "enc_scale")


def model(x):
    # a learned prior: the decoder side's draw z depends on prior_loc, and the held guide's
    # density at that draw must still pass its gradient on
    loc = pyro.param("prior_loc", torch.tensor(0.3))
    weight = pyro.param("weight", torch.tensor(1.2))
    with pyro.plate("data", x.shape[-1]):
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Bernoulli(logits=weight * z), obs=x)


def guide(x):
    weight = pyro.param("enc_weight", torch.tensor(0.4))
    scale = pyro.param("enc_scale", torch.tensor(0.6), constraint=dist.constraints.positive)
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("z", dist.Normal(weight * (x - 0.5), scale))


def gradients(loss, seed=0):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    loss.loss_and_grads(model, guide, X)
    store = pyro.get_param_store()
    grads = {name: store.get_param(name).unconstrained().grad.clone() for name in MODEL_PARAMS + GUIDE_PARAMS}
    pyro.clear_param_store()
    return grads


@pytest.mark.parametrize("cls", [Trace_MIM, JitTrace_MIM])
def test_the_guide_learns_from_the_encoder_side_alone_and_the_model_as_before(cls):
    held = gradients(cls(guide_gradient="encoder_side"))
    amim = gradients(cls(symmetric=False))
    full = gradients(cls())
    for name in GUIDE_PARAMS:
        # the encoder side draws first, so A-MIM's draws are the symmetric loss's encoder-side draws
        torch.testing.assert_close(held[name], 0.5 * amim[name], rtol=1e-6, atol=1e-7)
        assert not torch.allclose(full[name], held[name], atol=1e-3), name  # the decoder side did train it
    for name in MODEL_PARAMS:
        torch.testing.assert_close(held[name], full[name], rtol=1e-6, atol=1e-7)


def test_the_loss_value_is_the_symmetric_loss():
    def value(loss):
        pyro.clear_param_store()
        pyro.set_rng_seed(1)
        return loss.loss(model, guide, X)

    assert value(Trace_MIM(guide_gradient="encoder_side")) == pytest.approx(value(Trace_MIM()), rel=1e-7)


def test_a_held_distribution_has_the_same_density_and_no_parameter_gradient():
    loc = torch.tensor([0.5, -1.0], requires_grad=True)
    scale = torch.tensor([0.3, 2.0], requires_grad=True)
    shift = torch.tensor(0.7, requires_grad=True)
    value = torch.tensor([0.1, 0.4], requires_grad=True)
    for fn, point in (
        (dist.Normal(loc, scale).to_event(1), value),
        (dist.TransformedDistribution(dist.Normal(loc, scale), [dist.transforms.AffineTransform(shift, 2.0)]), value),
        (dist.Categorical(logits=torch.stack([loc, scale])), torch.tensor([0, 1])),
    ):
        held = held_distribution(fn)
        torch.testing.assert_close(held.log_prob(point), fn.log_prob(point))
        log_prob = held.log_prob(point.detach())
        assert not log_prob.requires_grad, type(fn).__name__
    # the value keeps its gradient (a learned prior's draw)
    assert held_distribution(dist.Normal(loc, scale)).log_prob(value).requires_grad


def test_a_guide_the_decoder_side_cannot_hold_is_refused_naming_the_site():
    flow = AffineAutoregressive(AutoRegressiveNN(2, [4]))

    def flow_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x)

    def flow_guide(x):
        pyro.module("flow", flow)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.TransformedDistribution(dist.Normal(0.5 * x, 1.0).to_event(1), [flow]))

    data = torch.randn(5, 2)
    with pytest.raises(ValueError, match=r"site 'z'.*guide_gradient='both'"):
        Trace_MIM(guide_gradient="encoder_side").loss_and_grads(flow_model, flow_guide, data)
    # the default gradient works with it
    assert torch.isfinite(torch.tensor(Trace_MIM().loss_and_grads(flow_model, flow_guide, data)))
    pyro.clear_param_store()


def test_a_bad_guide_gradient_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="guide_gradient must be 'both'.*'encoder_side'"):
        Trace_MIM(guide_gradient="decoder")
    loss = Trace_MIM()
    with pytest.raises(ValueError, match="guide_gradient must be"):
        loss.guide_gradient = True


def test_a_compiled_loss_follows_options_changed_between_steps():
    # each option that changes the graph is part of the compiled graph's cache key; the
    # parameters stay in the store (a compiled graph reads them there), unchanged by the steps
    store = pyro.get_param_store()

    def step(loss):
        for name in store.keys():
            store.get_param(name).unconstrained().grad = None
        pyro.set_rng_seed(0)
        loss.loss_and_grads(model, guide, X)
        return {name: store.get_param(name).unconstrained().grad.clone() for name in MODEL_PARAMS + GUIDE_PARAMS}

    pyro.clear_param_store()
    jit = JitTrace_MIM(baseline_decay=None)
    step(jit)
    # the last two changes go back to graphs compiled before
    changes = (
        ("guide_gradient", "encoder_side"),
        ("decoder_gradient", "score"),
        ("score_baseline", "leave_one_out"),
        ("score_baseline", "running_mean"),
        ("decoder_gradient", "detach"),
    )
    for option, value in changes:
        setattr(jit, option, value)
        options = {name: getattr(jit, name) for name in ("guide_gradient", "decoder_gradient", "score_baseline")}
        expected = step(Trace_MIM(baseline_decay=None, **options))
        got = step(jit)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-7)
    assert len(jit._signatures) == 4  # the last two changes reused the graphs of the second and first
    pyro.clear_param_store()
