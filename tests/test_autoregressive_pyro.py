"""Autoregressive distributions inside Pyro programs, and their errors on bad input.

The key property: in a one-site program ``pyro.sample("x", dist(net, z), obs=x)``
the draws of the un-conditioned model (symmetric MIM's decoder side) do not
depend on the observed ``x`` passed in. The same program written with
teacher-forced logits (``Bernoulli(logits=net(x, z))``) fails that check,
which shows the check can fail.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from ar_families import CONTEXT_DIM, FAMILIES, Family
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyromim import Trace_MIM
from pyromim.distributions import MADEDistribution, PixelCNNDistribution, TokenSequenceDistribution
from pyromim.nn import MADE, MLP, GatedPixelCNN, GRULanguageModel, SequenceEncoder

N = 6


@pytest.fixture(params=FAMILIES, ids=lambda f: f.__name__)
def family(request) -> Family:
    torch.manual_seed(0)
    return request.param()


def data(fam: Family, seed: int) -> torch.Tensor:
    idx = torch.randint(len(fam.outcomes), (N,), generator=torch.Generator().manual_seed(seed))
    return fam.outcomes[idx]


def program(fam: Family):
    """A VAE-style pair: ``z ~ N(0, I)``, ``x ~ fam(z)``; the guide encodes ``x`` to a diagonal Gaussian."""
    event = fam.outcomes.shape[1:]
    if isinstance(fam.net, GRULanguageModel):
        encoder: torch.nn.Module = SequenceEncoder(fam.net.vocab_size, 2 * CONTEXT_DIM, 4, 8, pad_id=fam.net.pad_id)
    else:
        encoder = MLP(event, (2 * CONTEXT_DIM,), hidden=(8,))

    def model(x):
        pyro.module("decoder", fam.net)
        with pyro.plate("data", N):
            z = pyro.sample("z", dist.Normal(torch.zeros(CONTEXT_DIM), 1.0).to_event(1))
            pyro.sample("x", fam.make(z), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        h = encoder(x if isinstance(encoder, SequenceEncoder) else x.float())
        with pyro.plate("data", N):
            pyro.sample(
                "z",
                dist.Normal(h[..., :CONTEXT_DIM], torch.nn.functional.softplus(h[..., CONTEXT_DIM:]) + 0.1).to_event(1),
            )

    return model, guide


LOSSES = {
    "elbo": lambda: Trace_ELBO(),
    "mim": lambda: Trace_MIM(),
    "mim_vectorised": lambda: Trace_MIM(num_particles=2, vectorize_particles=True, max_plate_nesting=1),
}


@pytest.mark.parametrize("loss", LOSSES)
def test_svi_steps_train_the_decoder(family, loss):
    model, guide = program(family)
    x = data(family, seed=1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), loss=LOSSES[loss]())
    before = [p.detach().clone() for p in family.net.parameters()]
    losses = [svi.step(x) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, family.net.parameters()))


def generated(model, x, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    pyro.set_rng_seed(seed)
    trace = poutine.trace(poutine.uncondition(model)).get_trace(x)
    return trace.nodes["z"]["value"], trace.nodes["x"]["value"]


def test_unconditioned_draws_do_not_depend_on_the_observed_batch(family):
    model, _ = program(family)
    x1, x2 = data(family, seed=2), data(family, seed=3)
    assert not torch.equal(x1, x2)
    z1, g1 = generated(model, x1)
    z2, g2 = generated(model, x2)
    assert torch.equal(z1, z2)
    assert torch.equal(g1, g2)
    assert not torch.equal(g1, generated(model, x1, seed=1)[1]), "draws differ from seed to seed"


def test_a_teacher_forced_program_fails_the_same_check():
    net = MADE(4, CONTEXT_DIM, hidden=(16,))
    with torch.no_grad():
        net.output_layer.weight.mul_(20.0)  # conditionals close to deterministic given the observed prefix

    def teacher_forced(x):
        with pyro.plate("data", N):
            z = pyro.sample("z", dist.Normal(torch.zeros(CONTEXT_DIM), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=net(x, z)).to_event(1), obs=x)

    x1 = torch.zeros(N, 4)
    x2 = torch.ones(N, 4)
    assert not torch.equal(generated(teacher_forced, x1)[1], generated(teacher_forced, x2)[1])


def one_line_error(fn, *match: str) -> None:
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for m in match:
        assert m in message, message


def test_bad_values_are_refused_with_one_line_naming_the_place():
    z = torch.zeros(2, CONTEXT_DIM)
    made = MADEDistribution(MADE(4, CONTEXT_DIM, hidden=(8,)), z)
    one_line_error(lambda: made.log_prob(torch.zeros(2, 5)), "shape (2, 5)", "event shape is (4,)")
    one_line_error(lambda: made.log_prob(torch.tensor([[0.0, 1, 0, 1], [0, 0, 2, 0]])), "value[1, 2] = 2", "0 or 1")
    one_line_error(lambda: made.log_prob(torch.zeros(3, 4)), "(3,)", "does not broadcast", "(2,)")
    cat = MADEDistribution(MADE(3, CONTEXT_DIM, hidden=(8,), num_categories=3), z)
    one_line_error(lambda: cat.log_prob(torch.tensor([[0, 1, 3], [0, 0, 0]])), "value[0, 2] = 3", "0..2")
    pix = PixelCNNDistribution(GatedPixelCNN((3, 3), CONTEXT_DIM, channels=4, num_layers=1), z)
    one_line_error(lambda: pix.log_prob(torch.zeros(2, 9)), "shape (2, 9)", "(3, 3)")
    lm = GRULanguageModel(7, CONTEXT_DIM, embedding_dim=4, hidden_size=8)
    seq = TokenSequenceDistribution(lm, z, 4)
    one_line_error(lambda: seq.log_prob(torch.tensor([[3, 4, 2, 0], [3, 9, 2, 0]])), "value[1, 1] = 9", "0..6")
    one_line_error(lambda: seq.log_prob(torch.tensor([[3, 0, 2, 0], [3, 4, 2, 0]])), "value[0, 1] = 0", "<pad> before")
    one_line_error(lambda: seq.log_prob(torch.tensor([[3, 4, 2, 0], [3, 2, 0, 5]])), "value[1, 3] = 5", "must be <pad>")
    one_line_error(lambda: seq.log_prob(torch.tensor([[1, 4, 2, 0], [3, 2, 0, 0]])), "value[0, 0] = 1", "<bos>")
    one_line_error(lambda: seq.log_prob(torch.tensor([[3, 4, 2], [3, 2, 0]])), "shape (2, 3)", "(4,)")


def test_bad_construction_is_refused_with_one_line():
    one_line_error(lambda: MADEDistribution(MADE(4, 3, hidden=(8,)), torch.zeros(2, 2)), "context_dim=3", "(2, 2)")
    one_line_error(lambda: MADE(3, 2, order=(0, 0, 1)), "permutation of 0..2")
    one_line_error(lambda: GatedPixelCNN((3, 3), 2, kernel=4), "odd kernel")
    one_line_error(lambda: GRULanguageModel(5, 2, pad_id=0, bos_id=0, eos_id=2), "three different ids")
    one_line_error(lambda: GRULanguageModel(5, 2, cell="rnn"), "'rnn'", "gru")
    one_line_error(lambda: TokenSequenceDistribution(GRULanguageModel(5, 2), torch.zeros(2), 0), "max_len")


def test_a_full_length_sequence_without_eos_is_a_truncated_sentence():
    """``log p`` of a sequence that fills ``L`` positions has no ``<eos>`` term: one more position than the truncation."""
    lm = GRULanguageModel(6, CONTEXT_DIM, embedding_dim=4, hidden_size=8)
    z = torch.randn(1, CONTEXT_DIM)
    full = torch.tensor([[3, 4, 5]])
    short = TokenSequenceDistribution(lm, z, 3).token_log_probs(full)
    longer = TokenSequenceDistribution(lm, z, 4).token_log_probs(torch.tensor([[3, 4, 5, 2]]))
    torch.testing.assert_close(short, longer[:, :3])
    assert longer[0, 3] < 0


def test_sequence_encoder_ignores_padding_and_keeps_leading_dims():
    enc = SequenceEncoder(8, 5, embedding_dim=4, hidden_size=6, bidirectional=True)
    short = torch.tensor([[3, 4, 2, 0], [5, 2, 0, 0]])
    padded = torch.cat([short, torch.zeros(2, 3, dtype=torch.long)], -1)
    torch.testing.assert_close(enc(short), enc(padded))
    alone = torch.stack([enc(s[(s != 0)].unsqueeze(0))[0] for s in short])
    torch.testing.assert_close(enc(short), alone)
    assert not torch.allclose(enc(short)[0], enc(torch.tensor([[4, 3, 2, 0]]))[0]), "order matters"
    assert enc(padded.expand(3, 2, 7)).shape == (3, 2, 5)
