"""Sequence-aware metrics checked against closed forms, quadrature and hand computations.

The token model is a tiny recurrent language model (vocabulary 5: <pad>=0,
<bos>=1, <eos>=2, words 3 and 4; length 3) conditioned on a one-dimensional
``z ~ N(0, 1)``, so its marginal likelihood is a one-dimensional integral that
Gauss-Hermite quadrature computes to float precision.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from ar_families import sharpen

from pyromim.distributions import MADEDistribution, TokenSequenceDistribution
from pyromim.metrics import (
    EVALUATE_KEYS,
    SEQUENCE_KEYS,
    code_reliance,
    corpus_bleu,
    evaluate,
    greedy_reconstruction,
    rate,
    token_likelihood,
)
from pyromim.nn import MADE, GRULanguageModel

W, B, SP = 2.0, 0.5, 0.7

# ------------------------------------------------------------------ BLEU by hand


def test_bleu_equals_hand_computed_precisions_and_brevity_penalty():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2 and c = r = 5: BLEU = (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 0.2 ** 0.25
    assert corpus_bleu([list("abcde")], [list("abcdf")]) == pytest.approx(0.2**0.25, rel=1e-12)
    # every n-gram matches, c = 4 < r = 6: BP = exp(1 - 6/4)
    assert corpus_bleu([list("abcd")], [list("abcdef")]) == pytest.approx(math.exp(-0.5), rel=1e-12)
    # clipping: "a" occurs once in the reference, so 1 of the 4 unigrams counts
    assert corpus_bleu([list("aaaa")], [list("abcd")], max_order=1) == pytest.approx(0.25, rel=1e-12)
    # no 4-gram match anywhere: 0 (no smoothing)
    assert corpus_bleu([list("abcd")], [list("abce")]) == 0.0


def test_bleu_pools_counts_over_the_corpus():
    hyps = [list("abcde"), list("xyz")]
    refs = [list("abcdf"), list("xyzw")]
    # unigrams 7/8, bigrams 5/6, trigrams 3/4, 4-grams 1/2 (only "abcd"); c = 5 + 3 = 8 < r = 5 + 4 = 9
    p = [7 / 8, 5 / 6, 3 / 4, 1 / 2]
    expected = math.exp(1 - 9 / 8) * math.exp(sum(math.log(v) for v in p) / 4)
    assert corpus_bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)


def test_bleu_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu([[1], [2]], [[1]])


# ------------------------------------------------------------------ Gaussian closed forms


def _linear_gaussian(w: float):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(w * z + B, SP), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.3 * x - 0.1, 0.4 + 0.1 * x.abs()))

    return model, guide


def _kl_to_standard_normal(m, s):
    return 0.5 * (s**2 + m**2 - 1) - torch.log(s)


def test_rate_is_the_closed_form_gaussian_kl():
    model, guide = _linear_gaussian(W)
    x = torch.linspace(-3, 3, 7)
    result = rate(model, guide, x)
    assert result.analytic
    exact = _kl_to_standard_normal(0.3 * x - 0.1, 0.4 + 0.1 * x.abs()).double()
    assert torch.allclose(result.per_datum, exact, atol=1e-6)
    assert result.mean == pytest.approx(exact.mean().item(), abs=1e-6)


def test_monte_carlo_rate_agrees_with_the_closed_form_within_its_standard_error():
    model, guide = _linear_gaussian(W)
    x = torch.linspace(-3, 3, 7)
    result = rate(model, guide, x, num_samples=4000, analytic=False)
    assert not result.analytic
    exact = _kl_to_standard_normal(0.3 * x - 0.1, 0.4 + 0.1 * x.abs()).double()
    # the standard error is about 0.01-0.03 nats per datum; 4.5 sigma over 7 data with a fixed seed
    assert bool((result.standard_error > 0).all())
    assert bool(((result.per_datum - exact).abs() < 4.5 * result.standard_error).all())


def test_rate_refuses_analytic_without_a_closed_form():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.StudentT(3.0, 0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 1.0))

    with pytest.raises(ValueError, match="no closed-form KL"):
        rate(model, guide, torch.zeros(3), analytic=True)
    assert not rate(model, guide, torch.zeros(3), num_samples=10).analytic


def test_code_reliance_matches_the_gaussian_closed_forms():
    model, guide = _linear_gaussian(W)
    x = torch.linspace(-3, 3, 7)
    result = code_reliance(model, guide, x, num_samples=4000)
    mu = 0.3 * x - 0.1
    exact_mean = dist.Normal(W * mu + B, SP).log_prob(x).double()
    assert torch.allclose(result.ll_at_mean, exact_mean, atol=1e-5)
    # E_{z ~ N(0,1)} log N(x; W z + B, SP^2) = -log(SP sqrt(2 pi)) - ((x - B)^2 + W^2) / (2 SP^2)
    exact_prior = (-math.log(SP * math.sqrt(2 * math.pi)) - ((x - B) ** 2 + W**2) / (2 * SP**2)).double()
    assert bool(((result.ll_at_prior - exact_prior).abs() < 4.5 * result.prior_standard_error).all())
    assert result.gap > 1.0


def test_code_reliance_gap_is_zero_for_a_decoder_that_ignores_z():
    model, guide = _linear_gaussian(0.0)
    result = code_reliance(model, guide, torch.linspace(-3, 3, 7), num_samples=50)
    assert result.gap == pytest.approx(0.0, abs=1e-6)
    assert result.gap_standard_error == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ token sequences

PAD, BOS, EOS, L = 0, 1, 2, 3


def _language_model(seed: int = 5) -> GRULanguageModel:
    return sharpen(GRULanguageModel(5, 1, embedding_dim=4, hidden_size=6), seed, scale=1.0)


def _sentence_pair(net: GRULanguageModel, guide_mean=None):
    """z ~ N(0, 1) (one dimension), w | z ~ the recurrent model; the guide is N(guide_mean(x), 0.5^2) or the prior."""

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", TokenSequenceDistribution(net, z, L), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            if guide_mean is None:
                pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            else:
                pyro.sample("z", dist.Normal(guide_mean(x), 0.5).to_event(1))

    return model, guide


SENTENCES = torch.tensor([[3, 2, 0], [4, 4, 2], [3, 4, 3], [2, 0, 0], [4, 3, 4], [3, 3, 2]])


def _quadrature_log_marginal(net: GRULanguageModel, x: torch.Tensor, nodes: int = 80) -> torch.Tensor:
    """``log int N(z; 0, 1) p(x | z) dz`` by Gauss-Hermite (probabilists') quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    z = torch.tensor(z, dtype=torch.float32)[:, None, None]  # (K, 1, 1)
    log_w = torch.log(torch.tensor(w / math.sqrt(2 * math.pi), dtype=torch.float64))
    with torch.no_grad():
        log_lik = TokenSequenceDistribution(net, z.expand(-1, len(x), 1), L).log_prob(x).double()  # (K, N)
    return torch.logsumexp(log_lik + log_w[:, None], 0)


def _lengths_by_hand(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor([row.index(EOS) + 1 if EOS in row else len(row) for row in x.tolist()], dtype=torch.float64)


def test_per_token_nll_and_perplexity_match_quadrature():
    net = _language_model()
    model, guide = _sentence_pair(net)
    result = token_likelihood(model, guide, SENTENCES, num_samples=3000)
    lengths = _lengths_by_hand(SENTENCES)
    assert torch.equal(result.num_tokens, lengths)
    exact = _quadrature_log_marginal(net, SENTENCES)
    # the prior proposal's weights are bounded here: the standard error is ~1e-2 nats per datum
    se = result.likelihood.standard_error
    assert bool(((result.likelihood.per_datum - exact).abs() < 4.5 * se + 1e-4).all())
    assert torch.allclose(result.per_datum, -exact / lengths, atol=float(4.5 * se.max()) + 1e-4)
    exact_per_token = -exact.sum().item() / lengths.sum().item()
    total_se = se.pow(2).sum().sqrt().item() / lengths.sum().item()
    assert result.nll_per_token == pytest.approx(exact_per_token, abs=4.5 * total_se + 1e-4)
    assert result.perplexity == pytest.approx(math.exp(result.nll_per_token), rel=1e-12)


def test_token_counts_take_the_special_ids_from_the_distribution():
    # eos = 4 and pad = 3 here: lengths count up to the first 4
    net = sharpen(GRULanguageModel(5, 1, embedding_dim=4, hidden_size=6, pad_id=3, bos_id=0, eos_id=4), 2)
    model, guide = _sentence_pair(net)
    x = torch.tensor([[1, 4, 3], [2, 2, 4], [4, 3, 3], [1, 2, 1]])
    result = token_likelihood(model, guide, x, num_samples=10)
    assert result.num_tokens.tolist() == [2.0, 3.0, 1.0, 3.0]


def test_per_token_nll_refuses_a_model_without_token_sequences():
    model, guide = _linear_gaussian(W)
    with pytest.raises(ValueError, match="no observed site of the model holds token sequences"):
        token_likelihood(model, guide, torch.zeros(4), num_samples=10)


def _greedy_by_hand(net: GRULanguageModel, context: torch.Tensor) -> list[list[int]]:
    """Greedy decodes from teacher-forced logits of the decoded prefix (an independent path from ``step``)."""
    decodes = []
    for c in context:
        prefix: list[int] = []
        while len(prefix) < L and (not prefix or prefix[-1] != EOS):
            padded = torch.tensor(prefix + [3] * (L - len(prefix)))[None]
            logits = net(padded, c[None])[0, len(prefix)]
            prefix.append(int(logits.argmax()))
        decodes.append(prefix + [PAD] * (L - len(prefix)))
    return decodes


def test_greedy_reconstruction_decodes_from_the_posterior_mean_and_scores_by_hand():
    net = _language_model(7)

    def mean(x):
        return (x.float() - 3.0).mean(-1, keepdim=True) * 3.0

    model, guide = _sentence_pair(net, mean)
    result = greedy_reconstruction(model, guide, SENTENCES)
    with torch.no_grad():
        expected = _greedy_by_hand(net, mean(SENTENCES))
    assert result.decodes["x"].tolist() == expected
    assert len({tuple(e) for e in expected}) > 1  # the code changes the decode
    correct = total = 0
    wrong = []
    for hyp, ref in zip(expected, SENTENCES.tolist()):
        n = ref.index(EOS) + 1 if EOS in ref else L
        total += n
        correct += sum(h == r for h, r in zip(hyp[:n], ref[:n]))
        wrong.append(sum(h != r for h, r in zip(hyp[:n], ref[:n])))
    assert result.token_accuracy == pytest.approx(correct / total, rel=1e-12)
    assert result.wrong_tokens == pytest.approx(sum(wrong) / len(wrong), rel=1e-12)
    assert result.per_datum_wrong.tolist() == wrong

    def cut(s):
        return s[: s.index(EOS)] if EOS in s else s

    bleu = corpus_bleu([cut(h) for h in expected], [cut(r) for r in SENTENCES.tolist()])
    assert result.bleu == pytest.approx(bleu, rel=1e-12)
    assert math.isnan(result.element_error_rate)


def test_greedy_reconstruction_feeds_no_observed_token_in():
    net = _language_model(7)
    model, guide = _sentence_pair(net, lambda x: torch.full((x.shape[0], 1), 0.8))
    first = greedy_reconstruction(model, guide, SENTENCES).decodes["x"]
    other = greedy_reconstruction(model, guide, SENTENCES.flip(0)).decodes["x"]
    assert torch.equal(first, other)  # same code, different data: same decode


def test_an_ancestral_loop_is_decoded_on_its_own_decodes():
    """One site per step, each fed the value pyro.sample returns: decoded like the one-site distribution."""
    net = _language_model(7)

    def mean(x):
        return (x.float() - 3.0).mean(-1, keepdim=True) * 3.0

    def loop_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            state = net.initial_state(z)
            token = torch.full((x.shape[0],), BOS)
            for t in range(L):
                logits, state = net.step(token, state, z)
                token = pyro.sample(f"w{t}", dist.Categorical(logits=logits), obs=x[:, t])

    _, guide = _sentence_pair(net, mean)
    result = greedy_reconstruction(loop_model, guide, SENTENCES[:3])
    one_site = _greedy_by_hand(net, mean(SENTENCES[:3]).detach())
    loop = torch.stack([result.decodes[f"w{t}"][:, 0] for t in range(L)], -1)
    # up to the first <eos> (the loop has no notion of <eos>: it keeps decoding after it)
    for row, ref in zip(loop.tolist(), one_site):
        n = ref.index(EOS) + 1 if EOS in ref else L
        assert row[:n] == ref[:n]


def test_binary_image_pixel_error_rate_is_of_the_greedy_decode():
    net = sharpen(MADE(4, 2, hidden=(16,), order=(2, 0, 3, 1)), 1)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", MADEDistribution(net, z), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, :2] * 2 - 1, 0.3).to_event(1))

    x = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 1]], dtype=torch.float)
    result = greedy_reconstruction(model, guide, x)
    with torch.no_grad():
        greedy = MADEDistribution(net, x[:, :2] * 2 - 1).greedy()
    assert torch.equal(result.decodes["x"], greedy)
    assert result.element_error_rate == pytest.approx((greedy != x).float().mean().item(), rel=1e-12)
    assert math.isnan(result.token_accuracy)


# ------------------------------------------------------------------ evaluate


def test_evaluate_reports_token_metrics_consistently_for_a_sentence_model():
    net = _language_model(7)

    def mean(x):
        return (x.float() - 3.0).mean(-1, keepdim=True) * 3.0

    model, guide = _sentence_pair(net, mean)
    result = evaluate(model, guide, SENTENCES, num_samples=50)
    assert tuple(result) == EVALUATE_KEYS + tuple(k for k in SEQUENCE_KEYS if k != "pixel_error_rate")
    decoded = greedy_reconstruction(model, guide, SENTENCES)
    assert result["recon_error"] == decoded.wrong_tokens  # no longer NaN for token data
    assert result["token_accuracy"] == decoded.token_accuracy and result["bleu4"] == decoded.bleu
    # the same importance-sampled estimate: nll * N = nll_per_token * (tokens in the corpus)
    tokens = _lengths_by_hand(SENTENCES).sum().item()
    assert result["nll_per_token"] * tokens == pytest.approx(result["nll"] * len(SENTENCES), rel=1e-9)
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_per_token"]), rel=1e-12)
    m, s = mean(SENTENCES), torch.tensor(0.5)
    assert result["rate"] == pytest.approx(_kl_to_standard_normal(m, s).mean().item(), abs=1e-6)
    assert math.isfinite(result["code_gap"])


def test_evaluate_reports_pixel_error_rate_and_greedy_recon_error_for_an_autoregressive_image_decoder():
    net = sharpen(MADE(4, 2, hidden=(16,), order=(2, 0, 3, 1)), 1)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", MADEDistribution(net, z), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, :2] * 2 - 1, 0.3).to_event(1))

    x = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]).float()
    result = evaluate(model, guide, x, num_samples=20)
    assert tuple(result) == EVALUATE_KEYS + ("rate", "code_gap", "pixel_error_rate")
    with torch.no_grad():
        greedy = MADEDistribution(net, x[:, :2] * 2 - 1).greedy()
    wrong = (greedy != x).double().sum(-1)
    assert result["pixel_error_rate"] == pytest.approx(wrong.sum().item() / x.numel(), rel=1e-12)
    assert result["recon_error"] == pytest.approx(wrong.sqrt().mean().item(), rel=1e-9)  # ||x - greedy||_2


def test_evaluate_keeps_the_keys_of_other_models_and_gives_nan_where_a_sequence_metric_does_not_apply():
    model, guide = _linear_gaussian(W)
    x = torch.linspace(-3, 3, 8)
    assert tuple(evaluate(model, guide, x, num_samples=20)) == EVALUATE_KEYS
    result = evaluate(model, guide, x, keys=("nll_per_token", "token_accuracy", "pixel_error_rate", "rate"))
    assert math.isnan(result["nll_per_token"]) and math.isnan(result["token_accuracy"])
    assert math.isnan(result["pixel_error_rate"])
    assert result["rate"] == pytest.approx(rate(model, guide, x).mean, abs=1e-9)
