"""The sentence VAE of ``examples/pyro_programs/sentence_vae.py``: a Bowman et al. style
Pyro program (bi-GRU encoder, GRU language-model decoder through
:class:`~pyromim.distributions.TokenSequenceDistribution`) trained through plain ``SVI``
with ``Trace_ELBO``, ``Trace_MIM()`` and ``Trace_MIM(symmetric=False)``.
"""

import math
import pathlib
import sys

import pyro
import pytest
import torch

from pyromim.data import SentenceGenerator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples" / "pyro_programs"))

import sentence_vae  # noqa: E402


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_mode_prints_a_finite_row_per_objective(one_thread, capsys):
    results = sentence_vae.main(["--quick", "--steps", "3", "--num-test", "24", "--hidden", "16"])
    out = capsys.readouterr().out
    assert sentence_vae.HEADER in out
    assert list(results) == ["ELBO", "MIM", "A-MIM"]
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| objective")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(results)
    _, _, test_x, _, generator = sentence_vae.sentences(0, n_test=24)
    assert "3 steps" in out and "GRU hidden 16" in out  # explicit options win over --quick
    for m in results.values():
        assert all(math.isfinite(v) for v in m.values()), m
        assert m["exact_nll"] == pytest.approx(generator.nll(test_x))
        # a model three steps old is far from the generator: its bound sits above the exact NLL
        assert m["nll"] > m["exact_nll"]
        assert m["rate"] >= 0 and 0 <= m["greedy_accuracy"] <= 1 and 0 <= m["knn5_topic"] <= 1
        assert 0 <= m["active_units"] <= sentence_vae.Z_DIM and m["step_s"] > 0


def test_cost_rounds_time_each_objective_on_the_same_batches(one_thread, capsys):
    costs = sentence_vae.main(["--cost-rounds", "2", "--hidden", "8", "--objectives", "ELBO", "A-MIM"])
    assert list(costs) == ["ELBO", "A-MIM"] and all(0 < c < math.inf for c in costs.values())
    out = capsys.readouterr().out
    assert "ELBO: " in out and "A-MIM: " in out and "x the ELBO's" in out


def test_every_parameter_has_one_name_of_its_own_in_the_param_store(one_thread):
    """Each network parameter is registered once, under its own path: no two modules share a name."""
    train_x = sentence_vae.sentences(0, n_train=64, n_test=1)[0]
    for objective in sentence_vae.OBJECTIVES:
        vae, losses, _ = sentence_vae.fit(objective, steps=2, hidden_dim=8, train_x=train_x)
        store = dict(pyro.get_param_store().named_parameters())
        assert len(store) == sum(1 for _ in vae.parameters())
        assert {id(p) for p in store.values()} == {id(p) for p in vae.parameters()}
        assert {name.split(".")[0] for name in store} == {"encoder", "decoder"}
        assert all(math.isfinite(v) for v in losses)


def test_greedy_accuracy_counts_words_and_eos_of_each_sentence(one_thread):
    """Against a per-sentence loop over the positions up to and including ``<eos>``."""
    x, _, _ = SentenceGenerator().sample(40, seed=3)
    vae = sentence_vae.SentenceVAE(len(SentenceGenerator().vocabulary), x.shape[1], hidden_dim=8)
    common = int(x[x > 3].mode().values)  # the commonest word of the batch
    with torch.no_grad():  # a decoder that always says `common` and never ends: its greedy decode is known
        vae.decoder.output.weight.zero_()
        vae.decoder.output.bias.zero_()
        vae.decoder.output.bias[common] = 5.0
        loc, _ = vae.encoder(x)
        decoded = sentence_vae.TokenSequenceDistribution(vae.decoder, loc, x.shape[1]).greedy()
    assert bool((decoded == common).all())
    right = total = 0
    for sentence, guess in zip(x.tolist(), decoded.tolist()):
        length = sentence.index(2) + 1  # <eos> id 2, counted
        right += sum(a == b for a, b in zip(sentence[:length], guess[:length]))
        total += length
    assert 0 < right < total  # the check can tell a partial match
    assert sentence_vae.greedy_token_accuracy(vae, x) == pytest.approx(right / total)


def test_rate_is_the_mean_gaussian_kl_to_the_prior(one_thread):
    """Against ``KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s``, summed over the 16 units."""
    torch.manual_seed(0)
    x, _, _ = SentenceGenerator().sample(30, seed=4)
    vae = sentence_vae.SentenceVAE(len(SentenceGenerator().vocabulary), x.shape[1], hidden_dim=8)
    with torch.no_grad():
        vae.encoder.fc_loc.bias.fill_(0.5)  # a rate well away from zero
        loc, scale = vae.encoder(x)
    per_sentence = (0.5 * (scale.double() ** 2 + loc.double() ** 2 - 1) - scale.double().log()).sum(-1)
    assert per_sentence.mean().item() > 1.0
    assert sentence_vae.rate(vae, x) == pytest.approx(per_sentence.mean().item(), rel=1e-5)


@pytest.mark.slow
def test_the_elbo_collapses_on_the_synthetic_sentences(one_thread):
    """The yardstick of the sentence benchmark: measured at 1200 steps (lr 1e-3, batch 64,
    GRU hidden 128, seeds 0 and 1), see the example's docstring."""
    train_x, train_y, test_x, test_y, generator = sentence_vae.sentences(0, n_test=500)
    vae, _, _ = sentence_vae.fit("ELBO", steps=1200, seed=0, train_x=train_x)
    m = sentence_vae.measure(vae, train_x[:2000], train_y[:2000], test_x, test_y, generator, num_samples=100)
    assert m["active_units"] == 0, m
    assert m["mi"] < 0.1, m
