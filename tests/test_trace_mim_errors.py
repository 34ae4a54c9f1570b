"""Bad inputs to Trace_MIM raise errors that name the site and say what to do."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI
from pyro.infer.autoguide import AutoMultivariateNormal

from pyromim import GuideInputsError, NonFiniteLossError, Trace_MIM


def model(x):
    loc = pyro.param("loc", torch.tensor(0.0))
    with pyro.plate("data", x.shape[-1]):
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x)


def guide(x):
    scale = pyro.param("scale", torch.tensor(0.5), constraint=dist.constraints.positive)
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("z", dist.Normal(0.5 * x, scale))


X = torch.randn(10)


def test_data_anchored_q_x_needs_the_asymmetric_loss():
    with pytest.raises(ValueError, match="only works with the asymmetric loss"):
        Trace_MIM(q_x="data")
    loss = Trace_MIM(symmetric=False, q_x="data")
    with pytest.raises(ValueError, match="symmetric=False, q_x='data'"):
        loss.symmetric = True


def test_unknown_q_x_and_bad_beta_are_rejected():
    with pytest.raises(ValueError, match="q_x must be 'marginal', 'data' or a callable"):
        Trace_MIM(q_x="aggregate")
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        Trace_MIM(beta=1.5)
    with pytest.raises(ValueError, match="decoder_gradient must be 'detach'"):
        Trace_MIM(decoder_gradient="stop")


def test_model_without_observed_site_cannot_be_symmetric():
    def prior_only(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="at least one observed site"):
        Trace_MIM().loss(prior_only, guide, X)
    assert torch.isfinite(torch.tensor(Trace_MIM(symmetric=False).loss(prior_only, guide, X)))


def test_guide_missing_a_latent_is_named():
    def two_latents(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            u = pyro.sample("u", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z + u, 0.5), obs=x)

    with pytest.raises(ValueError, match=r"no sample site for model latent\(s\) \['u'\]"):
        Trace_MIM(symmetric=False).loss(two_latents, guide, X)


@pytest.mark.parametrize("symmetric", [False, True])
def test_non_finite_term_names_site_and_side(symmetric):
    def bad_model(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            # zero scale: the log-density is not finite
            pyro.sample("x", dist.Normal(z, torch.zeros(())), obs=x)

    ones = torch.ones(6)
    with pyro.validation_enabled(False):
        with pytest.raises(NonFiniteLossError, match="model site 'x' on the encoder side"):
            Trace_MIM(symmetric=symmetric).loss(bad_model, guide, ones)


def test_non_finite_decoder_term_is_named():
    def model_wide(x):
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x)

    def guide_inf(x):
        with pyro.plate("data", x.shape[-1]):
            # finite at the data (|x| < 100), -inf at decoder-side generated x
            scale = torch.where(x.abs() < 100, torch.ones_like(x), torch.zeros_like(x))
            pyro.sample("z", dist.Normal(torch.zeros_like(x), scale + 1e-30 * 0))

    big = torch.full((4,), 0.5)

    def hook(generated, args, kwargs):
        return (generated["x"] + 1000.0,), kwargs

    with pyro.validation_enabled(False):
        with pytest.raises(NonFiniteLossError, match="guide site 'z' on the decoder side"):
            Trace_MIM(guide_inputs=hook).loss(model_wide, guide_inf, big)


def test_unmatched_observed_site_names_site_and_guide_parameters():
    def model_obs(data):
        with pyro.plate("N", data.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(z, 0.5), obs=2.0 * data)  # not `data`, nor a view or selection of it

    def guide_data(data):
        with pyro.plate("N", data.shape[-1]):
            pyro.sample("z", dist.Normal(0.5 * data, 1.0))

    with pytest.raises(GuideInputsError, match=r"observed site 'obs'.*guide \(data\).*guide_inputs=\{'obs': 'data'\}"):
        Trace_MIM().loss(model_obs, guide_data, X)
    # the mapping the error proposes fixes it
    assert torch.isfinite(torch.tensor(Trace_MIM(guide_inputs={"obs": "data"}).loss(model_obs, guide_data, X)))


def test_mapping_to_a_missing_parameter_is_named():
    with pytest.raises(GuideInputsError, match="no such parameter"):
        Trace_MIM(guide_inputs={"x": "images"}).loss(model, guide, X)


def test_guide_sizing_plate_from_leading_dim_gets_a_hint():
    def guide_dim0(x):
        with pyro.plate("data", x.shape[0]):  # wrong under vectorised particles
            pyro.sample("z", dist.Normal(0.5 * x, 1.0))

    loss = Trace_MIM(num_particles=3, vectorize_particles=True)
    with pytest.raises(ValueError, match=r"x.shape\[-2\]"):
        loss.loss(model, guide_dim0, X)


def test_learned_q_x_with_wrong_shape_is_named():
    def per_pixel(x):
        return torch.zeros(x.shape + (3,))

    with pytest.raises(ValueError, match=r"q_x callable returned shape \(10, 3\).*observed site 'x'"):
        Trace_MIM(q_x=per_pixel).loss(model, guide, X)


def test_automatic_guide_over_local_latents_cannot_be_symmetric():
    auto = AutoMultivariateNormal(model)  # a joint guide over the per-datum z: not an encoder
    with pytest.raises(
        ValueError, match=r"guide AutoMultivariateNormal has a point mass \(Delta\) 'z' inside the data"
    ):
        Trace_MIM().loss(model, auto, X)
    assert torch.isfinite(torch.tensor(Trace_MIM(symmetric=False).loss(model, auto, X)))


def test_plate_shape_mismatch_is_reported_by_site():
    def bad_guide(x):
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(torch.zeros(3), 1.0))  # shape 3, plate 10

    with pytest.raises(ValueError, match="z"):
        Trace_MIM().loss(model, bad_guide, X)


def test_svi_step_runs_with_poutine_scale():
    scaled = poutine.scale(model, scale=0.1)
    svi = SVI(scaled, poutine.scale(guide, scale=0.1), pyro.optim.Adam({"lr": 0.01}), loss=Trace_MIM())
    assert torch.isfinite(torch.tensor(svi.step(X)))


def test_compiled_loss_replays_uncompiled_to_name_a_non_finite_site():
    from pyromim import JitTrace_MIM

    def param_model(x):
        sd = pyro.param("sd", torch.tensor(0.5))  # no constraint: can be set to 0
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, sd), obs=x)

    loss = JitTrace_MIM(symmetric=False)
    assert torch.isfinite(torch.tensor(loss.loss(param_model, guide, X)))
    pyro.param("sd").unconstrained().data.zero_()
    with pyro.validation_enabled(False):
        with pytest.raises(NonFiniteLossError, match="model site 'x' on the encoder side"):
            loss.loss(param_model, guide, X)


def test_options_are_type_checked_when_set():
    with pytest.raises(TypeError, match="symmetric must be True .* got 'no'"):
        Trace_MIM(symmetric="no")
    loss = Trace_MIM()
    with pytest.raises(TypeError, match="symmetric must be"):
        loss.symmetric = "no"
    assert loss.symmetric is True
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_particles must be a whole number >= 1"):
            Trace_MIM(num_particles=bad)
    with pytest.raises(ValueError, match="num_particles"):
        loss.num_particles = 0
    with pytest.raises(TypeError, match="beta must be a number"):
        loss.beta = "1"
    with pytest.raises(TypeError, match="vectorize_particles must be"):
        Trace_MIM(vectorize_particles="yes")
    with pytest.raises(TypeError, match="check_finite must be"):
        loss.check_finite = 1
    with pytest.raises(ValueError, match="baseline_decay must lie in"):
        loss.baseline_decay = 1.0
    with pytest.raises(ValueError, match="decoder_gradient must be"):
        loss.decoder_gradient = "stop"
    with pytest.raises(TypeError, match="guide_inputs must be"):
        Trace_MIM(guide_inputs=3)
    with pytest.raises(TypeError, match="guide parameter names"):
        Trace_MIM(guide_inputs={"x": 1})


def test_a_misspelt_option_is_refused_with_the_close_match_named():
    from pyromim import JitTrace_MIM

    for cls in (Trace_MIM, JitTrace_MIM):
        loss = cls()
        with pytest.raises(AttributeError, match=r"no option 'symetric'; did you mean 'symmetric'"):
            loss.symetric = False
        assert loss.symmetric is True
        with pytest.raises(AttributeError, match="'decoder_gradient'"):
            loss.decoder_gradients = "score"
    loss = Trace_MIM()
    loss.beta = 0.5  # options and attributes unlike any option are set as usual
    loss.my_note = "kept"
    assert (loss.beta, loss.my_note) == (0.5, "kept")


def test_data_anchored_q_x_is_refused_whichever_option_is_set_last():
    symmetric = Trace_MIM(symmetric=True)
    with pytest.raises(ValueError, match="only works with the asymmetric loss"):
        symmetric.q_x = "data"
    assert symmetric.q_x == "marginal"
    asymmetric = Trace_MIM(symmetric=False)
    asymmetric.q_x = "data"
    with pytest.raises(ValueError, match="only works with the asymmetric loss"):
        asymmetric.symmetric = True
    with pytest.raises(ValueError, match="q_x must be"):
        asymmetric.q_x = "aggregate"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("validate", [True, False])
def test_non_finite_data_is_named_as_such(bad, validate):
    from pyromim import NonFiniteDataError

    x = X.clone()
    x[3] = bad
    with pyro.validation_enabled(validate):
        with pytest.raises(NonFiniteDataError, match=r"observed data contain NaN/inf: observed site 'x' \(") as info:
            Trace_MIM().loss(model, guide, x)
    assert "Expected parameter" not in str(info.value)
    assert ("1 NaN and 0 infinite" if bad != bad else "0 NaN and 1 infinite") in str(info.value)


def _encoder(floor):
    def encoder(x):
        log_scale = pyro.param("enc_log_scale", torch.tensor(0.0))
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(0.5 * x, log_scale.exp() + floor))

    return encoder


def test_collapsing_encoder_scale_stops_with_a_clear_error_before_nan():
    """A-MIM with q_x='data' rewards log q(z|x) without bound: an unfloored
    encoder scale runs the loss to minus infinity; the error names the site and
    the floor, and the floored encoder (the suggested fix) trains."""
    from pyromim.infer import CollapsedScaleError

    pyro.clear_param_store()
    svi = SVI(model, _encoder(0.0), pyro.optim.Adam({"lr": 0.5}), loss=Trace_MIM(symmetric=False, q_x="data"))
    losses = []
    with pytest.raises(CollapsedScaleError, match=r"guide site 'z' has collapsed.*softplus\(raw\) \+ 1e-3"):
        for _ in range(400):
            losses.append(svi.step(X))
    assert losses[-1] < losses[0] - 100  # it was running away, and every value so far was finite
    assert all(torch.isfinite(torch.tensor(losses)))
    pyro.clear_param_store()
    svi = SVI(model, _encoder(1e-3), pyro.optim.Adam({"lr": 0.5}), loss=Trace_MIM(symmetric=False, q_x="data"))
    assert all(torch.isfinite(torch.tensor([svi.step(X) for _ in range(100)])))
