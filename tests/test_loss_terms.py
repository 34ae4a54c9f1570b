"""loss_terms splits one step of Trace_MIM into terms that add up to its loss and gradient.

The same random state gives the same draws to ``loss_terms`` and to
``Trace_MIM.differentiable_loss``; the terms' values must add up to the loss and
the gradients of their surrogates to the estimator's gradient, under every
estimator (detached or score-function decoder side, baselines, particles,
asymmetric). The model is the Bernoulli one of ``test_trace_mim_bernoulli``.
"""

import pyro
import pytest
import torch
from mc import assert_unbiased, repeated, z_scores
from test_trace_mim_bernoulli import leaves, make_model_guide, make_params

from pyromim import Trace_MIM
from pyromim.infer import loss_terms

X = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])


def _grads(total, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, params, allow_unused=False)])


def _check_adds_up(loss, seed=3, **options):
    p = make_params()
    model, guide = make_model_guide(p)
    pyro.set_rng_seed(seed)
    loss.loss(model, guide, X)  # the pair's first step (its teacher-forcing check) done
    pyro.set_rng_seed(seed)
    terms = loss_terms(loss, model, guide, X, **options)
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        expected_value = loss.loss(model, guide, X)
    pyro.set_rng_seed(seed)
    expected = _grads(loss.differentiable_loss(model, guide, X), leaves(p))
    got_value = float(sum(t.value.detach() for t in terms))
    got = _grads(sum(t.surrogate for t in terms), leaves(p))
    assert got_value == pytest.approx(expected_value, rel=1e-6, abs=1e-6)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    return terms


def test_symmetric_terms_are_the_documented_ones_and_add_up():
    terms = _check_adds_up(Trace_MIM())
    labels = {(t.side, t.label) for t in terms}
    assert labels == {
        ("encoder", "model site 'z'"),
        ("encoder", "model site 'x'"),
        ("decoder", "model site 'z'"),
        ("decoder", "model site 'x'"),
        ("decoder", "guide site 'z'"),
        ("decoder", "re-encoded model site 'z'"),
        ("decoder", "re-encoded model site 'x'"),
        ("decoder", "re-encoding guide site 'z'"),
    }
    # the encoder guide's own log-density cancels: its term is absent, not zero-weighted


def test_score_decoder_gradient_terms_add_up_with_baselines():
    loss = Trace_MIM(decoder_gradient="score")
    terms = _check_adds_up(loss)
    assert ("decoder", "score function of decoder:model:x") in {(t.side, t.label) for t in terms}
    # the same with a baseline set: the terms subtract it as the training step does
    key = "decoder:model:x"
    loss.baselines[key] = 7.5
    _check_adds_up(loss)
    del loss.baselines[key]


@pytest.mark.parametrize("baseline", ["running_mean", "leave_one_out"])
def test_score_terms_split_by_cost_add_up(baseline):
    """Each decoder-side term weights the score on its own; with the running mean set, the
    baseline is a term of its own. Split or not, the terms add up to the training step's."""
    loss = Trace_MIM(decoder_gradient="score", score_baseline=baseline)
    key = "decoder:model:x"
    loss.baselines[key] = 7.5
    whole = _check_adds_up(loss)
    split = _check_adds_up(loss, split_scores=True)
    scores = [t.label for t in split if t.label.startswith("score function")]
    costs = [t.label for t in whole if t.side == "decoder" and not t.label.startswith("score function")]
    expected = [f"score function of {key}, cost: {label}" for label in costs]
    if baseline == "running_mean":
        expected.append(f"score function of {key}, running-mean baseline")
    assert scores == expected
    del loss.baselines[key]


@pytest.mark.parametrize(
    "options",
    [
        dict(symmetric=False),
        dict(num_particles=3),
        dict(num_particles=2, vectorize_particles=True, max_plate_nesting=1),
    ],
    ids=["asymmetric", "particles", "vectorised"],
)
def test_terms_add_up_for_other_settings(options):
    terms = _check_adds_up(Trace_MIM(**options))
    if options.get("symmetric") is False:
        assert {t.side for t in terms} == {"encoder"}


def test_detached_self_likelihood_term_has_no_expected_gradient():
    """Under decoder_gradient="detach" the decoder side's ``log p(x|z)`` at its own draw
    has gradient ``E_x[grad log p(x|z)] = 0`` for the decoder's weights: it only adds noise.
    Mean over 400 draws against its Monte Carlo error, beside a term that has signal."""
    p = make_params()
    model, guide = make_model_guide(p)
    loss = Trace_MIM()
    loss.loss(model, guide, X)

    def term_grads(label_side):
        def draw():
            terms = {(t.side, t.label): t for t in loss_terms(loss, model, guide, X)}
            return _grads(terms[label_side].surrogate, [p["W"], p["b"]])

        pyro.set_rng_seed(11)
        return repeated(draw, 400)

    assert_unbiased(term_grads(("decoder", "model site 'x'")), torch.zeros(6))
    # beside it a term with signal, so the check can tell one from the other
    assert z_scores(term_grads(("encoder", "model site 'x'")), torch.zeros(6)).abs().max() > 10.0
