"""Autoregressive distributions against enumeration, an explicit ancestral loop and their own draws.

Each family (MADE, gated PixelCNN, GRU/LSTM language model; binary and
categorical) is small enough that every value it can take is enumerated
(``ar_families``), so the checks are exact:

* ``exp(log_prob)`` sums to one over all values, per context;
* the one-pass (teacher-forced) ``log_prob`` equals the sum of the conditionals
  computed one position at a time from the prefix alone (the positions not yet
  generated filled with noise, the language model carried step by step);
* the frequencies of ``sample()`` match ``exp(log_prob)`` within binomial error;
* changing the value at a position never changes the conditionals at that
  position or before it in the generation order, and (no blind spot) does
  change every conditional after it.
"""

from __future__ import annotations

import pytest
import torch
from ar_families import CONTEXT_DIM, FAMILIES, Family, sharpen
from torch.distributions import Bernoulli, Categorical

from pyromim.distributions import TokenSequenceDistribution
from pyromim.nn import MADE, GatedPixelCNN, GRULanguageModel


@pytest.fixture(params=FAMILIES, ids=lambda f: f.__name__)
def family(request) -> Family:
    torch.manual_seed(0)
    return request.param()


def contexts(n: int = 3, seed: int = 11) -> torch.Tensor:
    return 1.5 * torch.randn(n, CONTEXT_DIM, generator=torch.Generator().manual_seed(seed))


def conditional_log_prob(logits: torch.Tensor, value: torch.Tensor, fam: Family) -> torch.Tensor:
    if fam.num_categories is None:
        return Bernoulli(logits=logits).log_prob(value.float())
    return Categorical(logits=logits).log_prob(value.long())


def is_sequence(fam: Family) -> bool:
    return isinstance(fam.net, GRULanguageModel)


def test_probabilities_sum_to_one(family):
    z = contexts()
    log_p = family.make(z).log_prob(family.outcomes.unsqueeze(1))  # (M, 3)
    assert log_p.shape == (len(family.outcomes), 3)
    torch.testing.assert_close(log_p.exp().sum(0), torch.ones(3), atol=1e-5, rtol=0)


def loop_log_prob(fam: Family, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``sum_t log p(x_t | x_<t, z)`` one position at a time; ``x`` ``(N,) + event``, ``z`` ``(N, dz)``."""
    if is_sequence(fam):
        net = fam.net
        state = net.initial_state(z)
        token = torch.full(x.shape[:1], net.bos_id)
        total = torch.zeros(x.shape[0])
        ended = torch.zeros(x.shape[0], dtype=torch.bool)
        for t in range(x.shape[1]):
            logits, state = net.step(token, state, z)
            total = total + torch.where(ended, 0.0, logits.log_softmax(-1).gather(-1, x[:, t : t + 1]).squeeze(-1))
            ended = ended | (x[:, t] == net.eos_id)
            token = x[:, t]
        return total
    gen = torch.Generator().manual_seed(3)
    total = torch.zeros(x.shape[0])
    for k, pos in enumerate(fam.positions):
        prefix_only = x.clone()
        levels = 2 if fam.num_categories is None else fam.num_categories
        noise = torch.randint(0, levels, x.shape, generator=gen).to(x.dtype)
        for later in fam.positions[k:]:
            prefix_only[(slice(None), *later)] = noise[(slice(None), *later)]
        logits = fam.net(prefix_only, z)[(slice(None), *pos)]
        total = total + conditional_log_prob(logits, x[(slice(None), *pos)], fam)
    return total


def test_teacher_forced_log_prob_equals_the_ancestral_loop(family):
    z = contexts(32, seed=12)
    with torch.no_grad():
        x = family.make(z).sample()
        torch.testing.assert_close(family.make(z).log_prob(x), loop_log_prob(family, x, z), atol=1e-5, rtol=0)
        # and on values not drawn from the model (every outcome, one context)
        zz = z[:1].expand(len(family.outcomes), -1)
        torch.testing.assert_close(
            family.make(zz).log_prob(family.outcomes), loop_log_prob(family, family.outcomes, zz), atol=1e-5, rtol=0
        )


def test_samples_follow_the_enumerated_probabilities(family):
    """Binomial z-scores of every outcome's frequency, 20,000 draws for each of 2 contexts.

    With at most 81 outcomes x 2 contexts, ``max |z| < 4.5`` fails by chance with
    probability below 2e-3 under correct sampling; a sampler off by one position or
    fed the wrong prefix moves probabilities by far more than 4.5 standard errors.
    """
    n = 20_000
    z = contexts(2, seed=13)
    dist = family.make(z)
    torch.manual_seed(0)
    draws = dist.sample((n,))  # (n, 2) + event
    assert draws.shape == (n, 2, *family.outcomes.shape[1:])
    flat = draws.flatten(2)
    match = (flat.unsqueeze(2) == family.outcomes.flatten(1).to(flat.dtype)).all(-1)  # (n, 2, M)
    assert (match.sum(-1) == 1).all(), "every draw must be exactly one enumerated value"
    freq = match.double().mean(0)  # (2, M)
    p = dist.log_prob(family.outcomes.unsqueeze(1)).T.double().exp().detach()  # (2, M)
    z_scores = (freq - p) / (p * (1 - p) / n).sqrt().clamp_min(1e-12)
    assert z_scores.abs().max() < 4.5, z_scores.abs().max()


def larger(fam_name: str) -> Family:
    """A larger network of the family, for the dependence structure (not enumerable)."""
    if fam_name.startswith("made"):
        k = None if fam_name == "made_binary" else 3
        net = sharpen(MADE(6, CONTEXT_DIM, hidden=(32, 32), num_categories=k, order=(3, 5, 0, 1, 4, 2)), 7)
        return Family(fam_name, net, None, None, [(3,), (5,), (0,), (1,), (4,), (2,)], k)
    if fam_name.startswith("pixelcnn"):
        k = None if fam_name == "pixelcnn_binary" else 3
        net = sharpen(GatedPixelCNN((4, 5), CONTEXT_DIM, num_categories=k, channels=8, num_layers=4), 8)
        return Family(fam_name, net, None, None, [(i, j) for i in range(4) for j in range(5)], k)
    cell = "gru" if fam_name == "gru" else "lstm"
    net = sharpen(GRULanguageModel(8, CONTEXT_DIM, embedding_dim=4, hidden_size=8, num_layers=2, cell=cell), 9)
    return Family(fam_name, net, None, None, [(t,) for t in range(5)], 8)


def test_conditionals_depend_on_exactly_the_earlier_positions(family):
    fam = larger(family.name)
    event = torch.Size([max(p[d] for p in fam.positions) + 1 for d in range(len(fam.positions[0]))])
    gen = torch.Generator().manual_seed(0)
    z = contexts(1, seed=14)
    if is_sequence(fam):
        x = torch.randint(3, 8, (1, *event), generator=gen)  # words only
    else:
        x = torch.randint(0, 2 if fam.num_categories is None else 3, (1, *event), generator=gen)
        x = x.float() if fam.num_categories is None else x
    with torch.no_grad():
        base = fam.net(x, z)[0]
        for k, pos in enumerate(fam.positions):
            changed = x.clone()
            if is_sequence(fam):
                changed[(0, *pos)] = 3 + (changed[(0, *pos)] - 3 + 1) % 5
            elif fam.num_categories is None:
                changed[(0, *pos)] = 1 - changed[(0, *pos)]
            else:
                changed[(0, *pos)] = (changed[(0, *pos)] + 1) % 3
            moved = (fam.net(changed, z)[0] - base).nan_to_num(0.0).abs()  # -inf - -inf at <pad>, <bos>
            for earlier in fam.positions[: k + 1]:
                assert moved[earlier].max() == 0, f"position {pos} changes the conditional at {earlier}"
            for later in fam.positions[k + 1 :]:
                assert moved[later].max() > 1e-7, f"position {pos} does not reach the conditional at {later}"


def test_greedy_takes_the_most_probable_value_at_each_step(family):
    z = contexts(8, seed=15)
    dist = family.make(z)
    g = dist.greedy()
    assert g.shape == (8, *family.outcomes.shape[1:])
    assert torch.isfinite(dist.log_prob(g)).all()
    with torch.no_grad():
        logits = family.net(g, z)
    best = (logits > 0).to(g.dtype) if family.num_categories is None else logits.argmax(-1)
    if is_sequence(family):
        counted = ~(dist._after_eos(g))  # positions after <eos> are <pad>, not decoded
        assert (best[counted] == g[counted]).all()
    else:
        assert (best == g).all()


def test_batch_shape_broadcasts_over_particles_and_data(family):
    p, b = 2, 3
    z = contexts(p * b, seed=16).reshape(p, b, CONTEXT_DIM)
    dist = family.make(z)
    event = family.outcomes.shape[1:]
    assert dist.batch_shape == (p, b) and dist.event_shape == event
    assert dist.sample().shape == (p, b, *event)
    assert dist.sample((4,)).shape == (4, p, b, *event)
    assert dist.expand((5, p, b)).sample().shape == (5, p, b, *event)
    x = family.outcomes[:b]  # one value per datum, shared by the particles
    log_p = dist.log_prob(x)
    assert log_p.shape == (p, b)
    one_by_one = torch.stack([family.make(z[i, j]).log_prob(x[j]) for i in range(p) for j in range(b)])
    torch.testing.assert_close(log_p.reshape(-1), one_by_one, atol=1e-6, rtol=0)


def test_draws_stop_at_eos_and_are_padded_after_it():
    net = GRULanguageModel(6, CONTEXT_DIM, embedding_dim=4, hidden_size=8)
    draws = TokenSequenceDistribution(net, contexts(1), 7).sample((500,)).squeeze(1)
    is_eos = (draws == net.eos_id).long()
    after = (is_eos.cumsum(-1) - is_eos) > 0
    assert (draws[after] == net.pad_id).all() and (draws[~after] > net.eos_id).logical_or(
        draws[~after] == net.eos_id
    ).all()
    assert after.any(), "some draws end before the maximum length"
    lengths = TokenSequenceDistribution(net, contexts(1), 7).lengths(draws)
    torch.testing.assert_close(lengths, (~after).sum(-1))


@pytest.mark.parametrize("layers,kernel,k", [(1, 3, None), (2, 5, 3), (3, 3, None)])
def test_pixelcnn_row_logits_read_only_the_rows_within_reach(layers, kernel, k):
    """The sampler's per-row pass on ``reach + 1`` rows equals the full pass; one row fewer would not."""
    net = GatedPixelCNN((9, 4), CONTEXT_DIM, num_categories=k, channels=6, num_layers=layers, kernel=kernel)
    assert net.reach == 1 + layers * (kernel // 2)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2 if k is None else k, (3, 9, 4), generator=gen)
    x = x.float() if k is None else x
    z = contexts(3, seed=17)
    with torch.no_grad():
        full = net(x, z)
        for row in range(9):
            torch.testing.assert_close(net.row_logits(x, z, row), full[:, row], atol=1e-6, rtol=0)
        row = net.reach + 1  # a row whose cut is below the top of the image
        short = net(x[:, row - net.reach + 1 : row + 1], z)[:, -1]
        assert (short - full[:, row]).abs().max() > 1e-6, "the reach is not larger than it needs to be"
