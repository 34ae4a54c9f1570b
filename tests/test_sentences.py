"""The synthetic sentence corpus: exact likelihood (normalised, matches the sampler), factors, splits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from pyromim.data import BUILTIN_DATASETS, SentenceGenerator, Vocabulary, load_data, synthetic_sentences
from pyromim.data.text import EOS, PAD, UNK


def tiny() -> SentenceGenerator:
    """2 topics x 2 styles, 7 words, sentences of 1..3 tokens: small enough to enumerate."""
    return SentenceGenerator(
        n_topics=2,
        n_styles=2,
        words_per_topic=2,
        n_function_words=3,
        style_words=2,
        min_length=1,
        max_length=3,
        leak=0.2,
    )


def all_sentences(generator: SentenceGenerator, longest: int) -> torch.Tensor:
    """Every sequence of 0..longest corpus words (specials excluded), laid out as ids, <eos>, <pad>."""
    words = range(4, len(generator.vocabulary))
    rows = []
    for length in range(longest + 1):
        for sentence in itertools.product(words, repeat=length):
            rows.append(list(sentence) + [EOS] + [PAD] * (longest - length))
    return torch.tensor(rows, dtype=torch.long)


def brute_force_log_prob(generator: SentenceGenerator, sentence: list[int]) -> float:
    """log P(x) from the definition, one pair and one position at a time (plain Python, no vectorising)."""
    length, total = len(sentence), 0.0
    for t in range(generator.n_topics):
        for s in range(generator.n_styles):
            p = float(generator.p_length[s, length]) if length <= generator.max_length else 0.0
            for i, w in enumerate(sentence):
                slot = int(generator.slots[s, length, i]) if p > 0 else -1
                p *= float(generator.p_content[t, w]) if slot == 1 else float(generator.p_function[s, w])
            total += p / generator.n_pairs
    return math.log(total) if total > 0 else -math.inf


def test_likelihood_sums_to_one_over_every_sentence():
    generator = tiny()
    # lengths 0..4 include sentences outside 1..3, which must carry no mass
    x = all_sentences(generator, longest=4)
    p = generator.log_prob(x).exp()
    assert len(x) == sum(7**k for k in range(5))
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    lengths = (x != PAD).sum(dim=1) - 1
    assert float(p[(lengths == 0) | (lengths == 4)].sum()) == 0.0


def test_likelihood_matches_the_definition_computed_pair_by_pair():
    for generator in (tiny(), SentenceGenerator()):
        x, _, _ = generator.sample(20, seed=3)
        exact = generator.log_prob(x)
        for row, value in zip(x, exact):
            words = [int(i) for i in row if i not in (EOS, PAD)]
            assert float(value) == pytest.approx(brute_force_log_prob(generator, words), rel=1e-12, abs=1e-12)


def test_sample_frequencies_match_the_likelihood():
    generator = tiny()
    n = 200_000
    x, _, _ = generator.sample(n, seed=11)
    support = all_sentences(generator, longest=3)
    p = generator.log_prob(support).exp().numpy()
    index = {tuple(row): k for k, row in enumerate(support.tolist())}
    counts = np.bincount([index[tuple(row)] for row in x.tolist()], minlength=len(support))
    # each count is Binomial(n, p): standardised deviations; 5 standard errors over ~400 cells fail by
    # chance with probability < 1e-3 (Bonferroni), while a wrong slot or length law moves whole groups
    z = (counts - n * p) / np.sqrt(n * p * (1 - p) + 1e-300)
    assert counts[p == 0].sum() == 0
    assert np.abs(z[p > 0]).max() < 5.0
    # and the joint fit: chi-square over cells with enough expected counts, others pooled
    big = n * p >= 5
    observed, expected = counts[big], n * p[big]
    if (~big & (p > 0)).any():
        observed, expected = np.append(observed, counts[~big].sum()), np.append(expected, n * p[~big].sum())
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3


def test_factor_posterior_and_mutual_information():
    generator = tiny()
    x = all_sentences(generator, longest=3)
    log_p = generator.log_prob(x)
    posterior = generator.posterior(x)[log_p > -math.inf]
    assert torch.allclose(posterior.sum(dim=(1, 2)), torch.ones(len(posterior), dtype=torch.float64))
    # exact mutual information by enumeration: sum_x P(x) sum_{t,s} P(t,s|x) log(P(t,s|x) * 40 ...)
    p = log_p.exp()[log_p > -math.inf]
    exact = float((p[:, None, None] * posterior * (posterior * generator.n_pairs).log().nan_to_num(0.0)).sum())
    estimate, stderr = generator.mutual_information(50_000, seed=5)
    assert 0.0 < exact < math.log(generator.n_pairs)
    assert abs(estimate - exact) < 4 * stderr


def mode_decode_wrong(
    generator: SentenceGenerator, tokens: torch.Tensor, topic: torch.Tensor | None, style: torch.Tensor
):
    """Wrong tokens of the decode that writes each slot's most probable word given (t, s, L), <eos> at L
    (given (s, L) when ``topic`` is None: a content slot's most probable word over all topics)."""
    length = (tokens == EOS).int().argmax(dim=1)
    slot = generator.slots[style, length]  # (N, max_length)
    if topic is None:
        content = generator.p_content.sum(0).argmax().expand(len(tokens))
    else:
        content = generator.p_content.argmax(1)[topic]
    decode = torch.where(slot == 1, content[:, None], generator.p_function.argmax(1)[style][:, None])
    inside = torch.arange(generator.max_length)[None, :] < length[:, None]
    return ((decode != tokens[:, : generator.max_length]) & inside).sum(dim=1).double()


def test_factor_decode_errors_by_enumeration_and_by_draws():
    # tiny corpus: every sentence and every pair, weighted by P(t, s) P(x | t, s)
    generator = tiny()
    x = all_sentences(generator, longest=3)
    joint = generator.log_likelihood(x).exp() / generator.n_pairs  # (N, T, S)
    exact = 0.0
    for t, s in itertools.product(range(generator.n_topics), range(generator.n_styles)):
        pair = torch.full((len(x),), t), torch.full((len(x),), s)
        exact += float((joint[:, t, s] * mode_decode_wrong(generator, x, *pair)).sum())
    assert abs(generator.factor_decode_errors() - exact) < 1e-12
    style_only = 0.0
    for s in range(generator.n_styles):
        style_only += float(
            (joint[:, :, s].sum(1) * mode_decode_wrong(generator, x, None, torch.full((len(x),), s))).sum()
        )
    assert abs(generator.factor_decode_errors(topic=False) - style_only) < 1e-12
    # the built-in corpus: the mean over draws within 4 standard errors (about 0.04 tokens)
    generator = SentenceGenerator()
    tokens, topic, style = generator.sample(20_000, seed=3)
    wrong = mode_decode_wrong(generator, tokens, topic, style)
    floor = generator.factor_decode_errors()
    assert abs(float(wrong.mean()) - floor) < 4 * float(wrong.std()) / math.sqrt(len(wrong))
    assert 9.0 < floor < 10.0  # of about 13 positions: no factor-only code reconstructs much
    assert floor < generator.factor_decode_errors(topic=False) < 11.0  # the topic is worth under one token


def test_default_corpus_shape_and_layout():
    generator = SentenceGenerator()
    assert len(generator.vocabulary) == 244 and generator.n_pairs == 40 and generator.width == 16
    x, topic, style = generator.sample(2000, seed=0)
    lengths = (x == EOS).int().argmax(dim=1)
    assert x.dtype == torch.long and x.shape == (2000, 16)
    assert int(lengths.min()) >= 9 and int(lengths.max()) <= 15
    assert bool(((x == EOS).sum(dim=1) == 1).all())
    after = torch.arange(16)[None, :] > lengths[:, None]
    assert bool((x[after] == PAD).all()) and bool(((x > UNK) & ~after).sum(dim=1).eq(lengths).all())
    # the factors are recoverable from a sentence: the posterior's mode finds the drawn topic and style
    posterior = generator.posterior(x)
    assert float((posterior.sum(dim=2).argmax(dim=1) == topic).float().mean()) > 0.95
    assert float((posterior.sum(dim=1).argmax(dim=1) == style).float().mean()) > 0.95
    mi, stderr = generator.mutual_information(4000, seed=1)
    assert 0.0 < mi <= math.log(40) + 3 * stderr


def test_structure_is_fixed_and_draws_follow_the_seed():
    a, b = SentenceGenerator(), SentenceGenerator()
    assert a.vocabulary == b.vocabulary and torch.equal(a.p_content, b.p_content)
    assert SentenceGenerator(structure_seed=1).vocabulary != a.vocabulary
    first, second = (
        synthetic_sentences(seed=4, n_train=50, n_val=20, n_test=20),
        synthetic_sentences(seed=4, n_train=50),
    )
    assert torch.equal(first.train.x, second.train.x)  # n_val/n_test do not change the training draws
    assert not torch.equal(first.train.x, synthetic_sentences(seed=5, n_train=50).train.x)
    assert not torch.equal(first.val.x, first.test.x)


def test_labels_choose_the_factor():
    generator = SentenceGenerator()
    x, topic, style = generator.sample(30, seed=2)
    for label, expected in (("topic", topic), ("style", style), ("pair", topic * 4 + style)):
        data = generator.dataset(30, seed=2, label=label)
        assert torch.equal(data.x, x) and torch.equal(data.labels, expected)
    with pytest.raises(ValueError, match="label must be one of"):
        generator.dataset(3, label="mood")


def test_builtin_sentences_data_set():
    assert "sentences" in BUILTIN_DATASETS
    splits = load_data("sentences", seed=0)
    assert len(splits.train) == 10_000 and len(splits.val) == 1_000 and len(splits.test) == 1_000
    for part in splits.parts().values():
        assert part.kind == "tokens" and part.vocabulary == SentenceGenerator().vocabulary
        assert int(part.labels.max()) < 10
    assert isinstance(splits.train.vocabulary, Vocabulary)


def test_log_prob_refuses_malformed_rows_and_scores_unknown_words_zero():
    generator = SentenceGenerator()
    x, _, _ = generator.sample(2, seed=0)
    no_eos = x.clone()
    no_eos[1][no_eos[1] == EOS] = 5
    with pytest.raises(ValueError, match="sentence 1 has no <eos>"):
        generator.log_prob(no_eos)
    junk = x.clone()
    junk[0, -1] = 7
    with pytest.raises(ValueError, match="sentence 0 holds tokens other than <pad> after its <eos>"):
        generator.log_prob(junk)
    with pytest.raises(ValueError, match="token ids must lie in 0..243"):
        generator.log_prob(x + 300)
    with pytest.raises(ValueError, match=r"\(N, width\) tensor"):
        generator.log_prob(x[0])
    # the same checks, one flag per row and no error: what log_prob refuses is exactly what is not well formed
    assert generator.well_formed(x).tolist() == [True, True]
    assert generator.well_formed(no_eos).tolist() == [True, False]
    assert generator.well_formed(junk).tolist() == [False, True]
    assert generator.well_formed(x + 300).tolist() == [False, False]
    unknown = x.clone()
    unknown[0, 0] = UNK
    log_p = generator.log_prob(unknown)
    assert log_p[0] == -math.inf and log_p[1] > -math.inf
    # a row wider than the corpus needs is fine; a sentence longer than max_length has probability 0
    long_row = torch.full((1, 20), PAD, dtype=torch.long)
    long_row[0, :16], long_row[0, 16] = 5, EOS
    assert generator.log_prob(long_row)[0] == -math.inf
    padded = torch.cat([x, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    assert torch.equal(generator.log_prob(padded), generator.log_prob(x))


def test_bad_structure_arguments_are_refused():
    with pytest.raises(ValueError, match="n_function_words must lie in 1..40"):
        SentenceGenerator(n_function_words=41)
    with pytest.raises(ValueError, match="min_length <= max_length"):
        SentenceGenerator(min_length=5, max_length=4)
    with pytest.raises(ValueError, match="n_train must be at least 1"):
        synthetic_sentences(n_train=0)
