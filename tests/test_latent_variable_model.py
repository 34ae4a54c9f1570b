"""The latent-variable model: Pyro conventions, particles, user API, learned q(x)."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

import pyromim
from pyromim import Trace_MIM
from pyromim.models import ParamStoreConflictError
from pyromim.specs import resolve_spec

HIER = "mnist_hvae_vampprior"


def _small_hier():
    spec = resolve_spec(HIER)
    m = spec.model
    spec = spec.replace(
        data=type(spec.data)(kind="binary", shape=[1, 8, 8]),
        model=type(m)(
            **{**m.__dict__, "prior_components": 5, "latent_dim": 3, "top_latent_dim": 2, "conditional_hidden": [16]}
        ),
    )
    return pyromim.build_model(spec)


def test_site_and_plate_conventions():
    model = pyromim.build_model("toy4")
    x = torch.randn(7, 2)
    guide_tr = pyro.poutine.trace(model.guide).get_trace(x)
    model_tr = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide_tr)).get_trace(x)
    assert model_tr.nodes["x"]["is_observed"]
    for tr, sites in ((model_tr, ("z", "x")), (guide_tr, ("z",))):
        for name in sites:
            (frame,) = tr.nodes[name]["cond_indep_stack"]
            assert (frame.name, frame.dim, frame.size) == ("data", -1, 7)
    assert guide_tr.nodes["z"]["value"].shape == (7, 2)


def test_two_level_sites():
    model = _small_hier()
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.5))
    guide_tr = pyro.poutine.trace(model.guide).get_trace(x)
    model_tr = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide_tr)).get_trace(x)
    assert guide_tr.nodes["z2"]["value"].shape == (4, 2)
    assert guide_tr.nodes["z"]["value"].shape == (4, 3)
    assert {n for n, s in model_tr.nodes.items() if s["type"] == "sample" and not s["is_observed"] and n != "data"} == {
        "z2",
        "z",
    }
    assert model_tr.observation_nodes == ["x"]


@pytest.mark.parametrize("build", [lambda: pyromim.build_model("digits_mixture"), _small_hier])
def test_vectorised_particles_with_symmetric_mim(build):
    model = build()
    x = torch.bernoulli(torch.full((5, *model.data_shape), 0.5))
    loss = Trace_MIM(symmetric=True, num_particles=3, vectorize_particles=True, max_plate_nesting=1)
    value = loss.loss_and_grads(model.model, model.guide, x)
    assert math.isfinite(value)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_vectorised_particles_with_elbo_match_average_of_single_particles():
    model = pyromim.build_model("toy4")
    x = torch.randn(6, 2)
    pyro.set_rng_seed(1)
    vec = Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1).loss(
        model.model, model.guide, x
    )
    pyro.set_rng_seed(2)
    single = sum(Trace_ELBO().loss(model.model, model.guide, x) for _ in range(400)) / 400
    # Both estimate the same expectation; their difference is dominated by the
    # 400-sample average, whose spread on this model is well below 5% of the value.
    assert vec == pytest.approx(single, rel=0.05)


def test_user_api_shapes():
    model = _small_hier()
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.5))
    assert model.encode(x).shape == (4, 3)
    assert model.encode(x, sample=True).shape == (4, 3)
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(6).shape == (6, 1, 8, 8)
    assert model.decode(torch.zeros(2, 3)).log_prob(x[:2]).shape == (2,)


def test_encoder_logvar_floor():
    model = pyromim.build_model("toy4")
    with torch.no_grad():
        model.encoder.head.linear.bias[2:] = -100.0
    _, scale = model.posterior(torch.zeros(3, 2))
    floor = model.spec.model.min_scale  # the toy spec's reference floor, 1e-6
    torch.testing.assert_close(scale, torch.full((3, 2), floor), rtol=1e-4, atol=0.0)


def test_support_check_on_first_use():
    model = pyromim.build_model("digits_normal")
    with pytest.raises(ValueError, match="discretized_logistic"):
        model.model(torch.full((3, 64), 77 / 255))


def test_two_models_with_the_same_names_are_caught():
    first = pyromim.build_model("toy4")
    SVI(first.model, first.guide, Adam({"lr": 1e-3}), Trace_ELBO()).step(torch.randn(4, 2))
    second = pyromim.build_model("toy4")
    with pytest.raises(ParamStoreConflictError, match="pyro.clear_param_store"):
        second.guide(torch.randn(4, 2))
    pyro.clear_param_store()
    second.guide(torch.randn(4, 2))


def test_learned_marginal_matches_explicit_mixture_and_trains_with_trace_mim():
    spec = resolve_spec("toy4")
    spec = spec.replace(
        model=type(spec.model)(**{**spec.model.__dict__, "marginal_components": 4}),
        training=type(spec.training)(**{**spec.training.__dict__, "q_x": "learned"}),
    )
    model = pyromim.build_model(spec)
    x = torch.randn(5, 2)
    log_q = model.marginal(x=x)
    assert log_q.shape == (5,)
    explicit = torch.stack([model.decode(u).log_prob(x) for u in model.marginal.pseudo_latents], -1)
    torch.testing.assert_close(log_q, explicit.logsumexp(-1) - math.log(4))
    # Under Trace_MIM the generated x carries a particle dim: the marginal keeps it.
    assert model.marginal(x=torch.randn(3, 5, 2)).shape == (3, 5)
    loss = Trace_MIM(symmetric=True, q_x=model.marginal)
    assert math.isfinite(loss.loss_and_grads(model.model, model.guide, x))
    assert model.marginal.pseudo_latents.grad is not None
    assert model.marginal.pseudo_latents.grad.abs().sum() > 0
