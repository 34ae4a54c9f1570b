"""A model whose observed site's distribution is computed from the observed data passed to it
(teacher forcing) is refused by symmetric MIM, whose decoder side would draw copies of the data;
the same decoder written as an ancestral loop runs, as does every model that draws its data
ancestrally (dropout included)."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI
from torch import nn

from pyromim import JitTrace_MIM, Trace_MIM
from pyromim.infer import TeacherForcingError

D, DZ, V, L = 6, 2, 5, 4  # pixels, latent size, vocabulary, sequence length


class PixelDecoder(nn.Module):
    """Bernoulli pixel i has logit f(z)_i + sum_{j<i} A_ij x_j (a one-layer autoregressive decoder)."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(DZ, 16), nn.Dropout(dropout), nn.Tanh(), nn.Linear(16, D))
        self.a = nn.Parameter(torch.randn(D, D))

    def logits(self, z, x):  # all pixels at once from x (teacher forced)
        return self.f(z) + x @ torch.tril(self.a, -1).T

    def step(self, z, previous, i):  # pixel i from the pixels drawn before it
        return self.f(z)[..., i] + (previous * torch.tril(self.a, -1)[i, :i]).sum(-1)


class TokenDecoder(nn.Module):
    """A GRU language model over tokens, conditioned on z through its initial state."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V + 1, 8)  # token V is <bos>
        self.init = nn.Linear(DZ, 8)
        self.cell = nn.GRUCell(8, 8)
        self.out = nn.Linear(8, V)

    def logits(self, z, x):  # every position's logits from the observed prefix (teacher forced)
        h = torch.tanh(self.init(z))
        inputs = torch.cat([torch.full_like(x[..., :1], V), x[..., :-1]], -1)
        out = []
        for t in range(L):
            h = self.cell(self.embed(inputs[..., t]), h)
            out.append(self.out(h))
        return torch.stack(out, -2)


def encoder(in_dim):
    return nn.Sequential(nn.Linear(in_dim, 16), nn.Tanh(), nn.Linear(16, 2 * DZ))


def pair(decoder, style, tokens=False):
    enc = encoder(L if tokens else D)

    def prior(n):
        return pyro.sample("z", dist.Normal(torch.zeros(n, DZ), 1.0).to_event(1))

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[-2]):
            z = prior(x.shape[-2])
            if style == "teacher_forced":
                logits = decoder.logits(z, x)
                d = dist.Categorical(logits=logits) if tokens else dist.Bernoulli(logits=logits)
                pyro.sample("x", d.to_event(1), obs=x)
            elif tokens:
                h = torch.tanh(decoder.init(z))
                token = torch.full(x.shape[:-1], V, dtype=torch.long)
                for t in range(L):
                    h = decoder.cell(decoder.embed(token), h)
                    token = pyro.sample(f"x_{t}", dist.Categorical(logits=decoder.out(h)), obs=x[..., t])
            else:
                previous = x.new_zeros(x.shape[:-1] + (0,))
                for i in range(D):
                    xi = pyro.sample(f"x_{i}", dist.Bernoulli(logits=decoder.step(z, previous, i)), obs=x[..., i])
                    previous = torch.cat([previous, xi.unsqueeze(-1)], -1)

    def guide(x):
        pyro.module("encoder", enc)
        with pyro.plate("data", x.shape[-2]):
            loc, log_scale = enc(x.float()).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp() + 0.05).to_event(1))

    return model, guide


def data(tokens):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (16, L), generator=g) if tokens else torch.randint(0, 2, (16, D), generator=g).float()


@pytest.mark.parametrize("loss_class", [Trace_MIM, JitTrace_MIM])
@pytest.mark.parametrize("tokens", [False, True], ids=["pixels", "tokens"])
def test_a_teacher_forced_decoder_is_refused_by_symmetric_mim_with_the_site_and_the_fixes(loss_class, tokens):
    model, guide = pair(TokenDecoder() if tokens else PixelDecoder(), "teacher_forced", tokens)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss_class())
    with pytest.raises(TeacherForcingError) as caught:
        svi.step(data(tokens))
    message = str(caught.value)
    assert "observed site 'x'" in message and "\n" not in message
    for fix in ("pyromim.distributions", "ancestral loop", "symmetric=False"):
        assert fix in message


@pytest.mark.parametrize("tokens", [False, True], ids=["pixels", "tokens"])
def test_the_same_decoder_trains_under_a_mim(tokens):
    model, guide = pair(TokenDecoder() if tokens else PixelDecoder(), "teacher_forced", tokens)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_MIM(symmetric=False))
    losses = [svi.step(data(tokens)) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("tokens", [False, True], ids=["pixels", "tokens"])
def test_the_ancestral_loop_runs_unchanged_and_its_draws_do_not_depend_on_the_data(tokens):
    model, guide = pair(TokenDecoder() if tokens else PixelDecoder(), "ancestral", tokens)
    loss = Trace_MIM()
    x = data(tokens)
    assert torch.isfinite(torch.tensor(SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss).step(x)))
    # the decoder side's draws from the same random state, given two different observed batches
    draws = []
    for batch in (x, x.flip(0)):
        pyro.set_rng_seed(3)
        trace = pyro.poutine.trace(pyro.poutine.uncondition(model)).get_trace(batch)
        draws.append(torch.stack([trace.nodes[f"x_{i}"]["value"] for i in range(L if tokens else D)], -1))
    assert torch.equal(draws[0], draws[1])


def test_a_decoder_with_dropout_is_not_mistaken_for_teacher_forcing():
    model, guide = pair(PixelDecoder(dropout=0.5), "ancestral")
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_MIM())
    assert torch.isfinite(torch.tensor([svi.step(data(False)) for _ in range(2)])).all()


def test_the_check_runs_once_per_pair():
    decoder = PixelDecoder()
    model, guide = pair(decoder, "ancestral")
    calls = []
    decoder.f.register_forward_hook(lambda *_: calls.append(1))
    loss = Trace_MIM()
    per_step = []
    for _ in range(3):
        calls.clear()
        loss.loss(model, guide, data(False))
        per_step.append(len(calls))
    # the decoder's feature net runs once per pixel step; the first step replays the model twice more
    assert per_step[0] == per_step[1] + 2 * D and per_step[1] == per_step[2]


@pytest.mark.parametrize("tokens", [False, True], ids=["pixels", "tokens"])
def test_generation_consistency_refuses_a_teacher_forced_decoder_and_measures_an_ancestral_one(tokens):
    from pyromim.metrics import generation_consistency

    decoder = TokenDecoder() if tokens else PixelDecoder()
    forced = pair(decoder, "teacher_forced", tokens)
    with pytest.raises(TeacherForcingError, match="generation_consistency: the distribution of observed site 'x'"):
        generation_consistency(*forced, data(tokens))
    result = generation_consistency(*pair(decoder, "ancestral", tokens), data(tokens))
    assert result.num_samples == 16 and math.isfinite(result.r2)
