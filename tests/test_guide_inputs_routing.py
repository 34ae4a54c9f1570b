"""Generated data reaches the guide argument it came from without configuration.

Each program observes a view, a slice or a selection of the guide's argument.
The reference is the same loss with the routing written by hand as a
``guide_inputs`` callable: under one random seed both must give the same loss
and the same gradients (the routing is exact, not approximately right).
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI
from torch import nn

from pyromim import GuideInputsError, Trace_MIM

B, H, W, Z = 6, 4, 4, 3
PIXELS = H * W


def _nets(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(PIXELS, 2 * Z), nn.Linear(Z, PIXELS)


def _images(seed=1):
    return torch.bernoulli(torch.full((B, H, W), 0.4), generator=torch.Generator().manual_seed(seed))


def _same_loss_and_grads(model, guide, hook, *args, **options):
    """Loss and gradients of the automatic routing and of the hand-written hook, same draws."""
    results = []
    for loss in (Trace_MIM(**options), Trace_MIM(guide_inputs=hook, **options)):
        pyro.set_rng_seed(3)
        value = loss.differentiable_loss(model, guide, *args)
        params = [p for p in pyro.get_param_store().values()]
        results.append((value.detach(), torch.autograd.grad(value, params)))
    (auto, auto_grads), (manual, manual_grads) = results
    assert torch.equal(auto, manual)
    for a, m in zip(auto_grads, manual_grads):
        assert torch.allclose(a, m, atol=1e-6)
    return auto


def _vae(observe, encode=lambda x: x.reshape(-1, PIXELS), size=lambda x: x.shape[0]):
    """Pyro's VAE example shape: ``observe(x)`` is what the model scores."""
    enc, dec = _nets()

    def model(x):
        pyro.module("decoder", dec)
        with pyro.plate("data", size(x)):
            z = pyro.sample("latent", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=dec(z)).to_event(1), obs=observe(x))

    def guide(x):
        pyro.module("encoder", enc)
        with pyro.plate("data", size(x)):
            loc, log_scale = enc(encode(x)).chunk(2, -1)
            pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))

    return model, guide


def _reshaped_back(generated, args, kwargs):
    x = args[0]
    return (generated["obs"].reshape(generated["obs"].shape[:-2] + x.shape),), kwargs


@pytest.mark.parametrize(
    "observe",
    [
        lambda x: x.reshape(-1, PIXELS),  # Pyro's VAE example
        lambda x: x.view(-1, PIXELS),
        lambda x: x.flatten(1),
    ],
    ids=["reshape", "view", "flatten"],
)
def test_a_view_of_the_guide_argument_is_routed_back_in_its_shape(observe):
    model, guide = _vae(observe)
    _same_loss_and_grads(model, guide, _reshaped_back, _images())


def test_flat_data_observed_through_reshape_is_routed():
    """``x.reshape(-1, 16)`` of ``(B, 16)`` data: an alias of ``x``, not ``x`` itself."""
    model, guide = _vae(lambda x: x.reshape(-1, PIXELS))
    x = _images().reshape(B, PIXELS)
    _same_loss_and_grads(model, guide, lambda g, a, k: ((g["obs"],), k), x)


def test_vectorised_particles_keep_their_dimension_through_the_view():
    model, guide = _vae(lambda x: x.reshape(-1, PIXELS), encode=lambda x: x.flatten(-2), size=lambda x: x.shape[-3])
    _same_loss_and_grads(model, guide, _reshaped_back, _images(), num_particles=3, vectorize_particles=True)


def test_a_dict_batch_is_routed_to_its_entry():
    enc, dec = _nets()

    def model(batch):
        pyro.module("decoder", dec)
        with pyro.plate("data", batch["x"].shape[0]):
            z = pyro.sample("latent", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=dec(z) + batch["shift"]).to_event(1), obs=batch["x"].flatten(1))

    def guide(batch):
        pyro.module("encoder", enc)
        with pyro.plate("data", batch["x"].shape[0]):
            loc, log_scale = enc(batch["x"].flatten(1)).chunk(2, -1)
            pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))

    batch = {"x": _images(), "shift": torch.randn(B, 1)}

    def hook(generated, args, kwargs):
        (b,) = args
        return ({**b, "x": generated["obs"].reshape(b["x"].shape)},), kwargs

    _same_loss_and_grads(model, guide, hook, batch)


def test_slices_of_one_argument_at_several_sites_are_routed_together():
    """A deep-Markov-model-style program: site ``obs_t`` observes ``x[:, t]``."""
    steps, features = 5, 3
    torch.manual_seed(0)
    emit, combine = nn.Linear(2, features), nn.GRU(features, 4, batch_first=True)
    head = nn.Linear(4, 4)

    def model(x):
        pyro.module("emit", emit)
        with pyro.plate("seqs", x.shape[0]):
            z = x.new_zeros(x.shape[0], 2)
            for t in range(steps):
                z = pyro.sample(f"z_{t}", dist.Normal(0.9 * z, 0.5).to_event(1))
                pyro.sample(f"obs_{t}", dist.Normal(emit(z), 0.3).to_event(1), obs=x[:, t, :])

    def guide(x):
        pyro.module("combine", combine)
        pyro.module("head", head)
        hidden, _ = combine(x)
        with pyro.plate("seqs", x.shape[0]):
            for t in range(steps):
                loc, log_scale = head(hidden[:, t]).chunk(2, -1)
                pyro.sample(f"z_{t}", dist.Normal(loc, log_scale.exp()).to_event(1))

    x = torch.randn(B, steps, features)

    def hook(generated, args, kwargs):
        return (torch.stack([generated[f"obs_{t}"] for t in range(steps)], -2),), kwargs

    _same_loss_and_grads(model, guide, hook, x)


def test_a_masked_selection_is_routed_into_the_masked_elements():
    """Pyro's CVAE observes ``ys[xs == -1].view(B, -1)``: the generated values go
    back into ``ys`` where ``xs == -1``; the rest of ``ys`` keeps its values."""
    enc, dec = _nets()
    ys = _images()
    xs = ys.clone()
    xs[:, H // 2 :, :] = -1.0  # the lower half is to be predicted

    def model(xs, ys):
        pyro.module("decoder", dec)
        with pyro.plate("data"):
            z = pyro.sample("z", dist.Normal(xs.new_zeros(xs.shape[0], Z), 1.0).to_event(1))
            logits = dec(z)
            masked = logits[(xs == -1).view(-1, PIXELS)].view(xs.shape[0], -1)
            pyro.sample("y", dist.Bernoulli(logits=masked).to_event(1), obs=ys[xs == -1].view(xs.shape[0], -1))

    def guide(xs, ys):
        pyro.module("encoder", enc)
        with pyro.plate("data"):
            joined = xs.clone()
            joined[xs == -1] = ys[xs == -1]
            loc, log_scale = enc(joined.view(-1, PIXELS)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    def hook(generated, args, kwargs):
        xs, ys = args
        new = ys.clone()
        new[xs == -1] = generated["y"].reshape(-1)
        return (xs, new), kwargs

    _same_loss_and_grads(model, guide, hook, xs, ys)


def test_explicit_mapping_reshapes_when_element_counts_agree():
    """A mapped argument of another shape with as many elements gets the generated data reshaped."""
    model, guide = _vae(lambda x: (x > 0.5).float().reshape(-1, PIXELS))
    x = _images()
    with pytest.raises(GuideInputsError, match=r"guide_inputs=\{'obs': 'x'\}"):
        Trace_MIM().loss(model, guide, x)
    pyro.set_rng_seed(3)
    mapped = Trace_MIM(guide_inputs={"obs": "x"}).loss(model, guide, x)
    pyro.set_rng_seed(3)
    assert mapped == Trace_MIM(guide_inputs=_reshaped_back).loss(model, guide, x)


def test_no_argument_with_the_data_proposes_a_callable():
    enc, dec = _nets()

    def model(x, noise):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            pyro.sample("obs", dist.Normal(dec(z)[:, :8], 1.0).to_event(1), obs=x.reshape(-1, PIXELS)[:, :8] + noise)

    def guide(x, noise):
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = enc(x.reshape(-1, PIXELS)).chunk(2, -1)
            pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))

    with pytest.raises(
        GuideInputsError, match=r"observed site 'obs' \(shape \(6, 8\)\).*guide_inputs=lambda generated"
    ):
        Trace_MIM().loss(model, guide, _images(), torch.randn(B, 1))


def test_vectorised_particles_hint_names_plate_sizing_and_the_encoder_reshape():
    """Pyro's VAE as written sizes its plate with ``x.shape[0]`` and flattens with
    ``reshape(-1, 784)``: under vectorised particles both break, and the error says both."""
    model, guide = _vae(lambda x: x.reshape(-1, PIXELS))
    loss = Trace_MIM(num_particles=2, vectorize_particles=True, max_plate_nesting=1)
    with pytest.raises((ValueError, RuntimeError)) as info:
        loss.loss(model, guide, _images())
    text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert "x.shape[-2]" in text and "reshape(-1, 784)" in text, text


def test_svi_trains_pyros_vae_shape_without_configuration():
    model, guide = _vae(lambda x: x.reshape(-1, PIXELS))
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x = _images()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), loss=Trace_MIM())
    losses = [svi.step(x) for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_a_compiled_loss_refuses_a_selection_it_would_freeze():
    from pyromim import JitTrace_MIM
    from pyromim.infer import CompilationError

    ys = _images()
    xs = ys.clone()
    xs[:, H // 2 :, :] = -1.0
    enc, dec = _nets()

    def model(xs, ys):
        pyro.module("decoder", dec)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(xs.new_zeros(xs.shape[0], Z), 1.0).to_event(1))
            logits = dec(z)[(xs == -1).view(-1, PIXELS)].view(xs.shape[0], -1)
            pyro.sample("y", dist.Bernoulli(logits=logits).to_event(1), obs=ys[xs == -1].view(xs.shape[0], -1))

    def guide(xs, ys):
        pyro.module("encoder", enc)
        with pyro.plate("data", xs.shape[0]):
            loc, log_scale = enc(torch.where(xs == -1, ys, xs).view(-1, PIXELS)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    with pytest.raises(CompilationError, match="selection of a guide argument"):
        JitTrace_MIM().loss(model, guide, xs, ys)
    assert torch.isfinite(torch.tensor(Trace_MIM().loss(model, guide, xs, ys)))
