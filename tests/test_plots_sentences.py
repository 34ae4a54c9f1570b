"""The sentence table: reconstructions are the metrics' greedy decodes, in words; prior draws are listed."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from ar_families import sharpen

from pyromim.data.text import Vocabulary
from pyromim.distributions import TokenSequenceDistribution
from pyromim.metrics import greedy_reconstruction
from pyromim.nn import GRULanguageModel
from pyromim.plots import write_sentence_table

VOCABULARY = Vocabulary(["cat", "dog"])  # ids 4 and 5 after <pad> <bos> <eos> <unk>
DATA = torch.tensor([[4, 2, 0, 0], [5, 4, 5, 2], [4, 4, 2, 0]])


def _pair():
    net = sharpen(GRULanguageModel(6, 1, embedding_dim=4, hidden_size=6), 3, scale=1.0)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", TokenSequenceDistribution(net, z, 4), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal((x.float() - 4.5).sum(-1, keepdim=True), 0.5).to_event(1))

    return model, guide


def test_table_shows_data_beside_the_greedy_reconstructions_and_lists_prior_draws(tmp_path):
    model, guide = _pair()
    path = write_sentence_table(model, guide, DATA, VOCABULARY, tmp_path / "sentences.md", num_prior=5)
    lines = path.read_text().splitlines()
    decodes = greedy_reconstruction(model, guide, DATA).decodes["x"]
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    expected = [
        f"| {' '.join(VOCABULARY.decode(x)) or '(empty)'} | {' '.join(VOCABULARY.decode(y)) or '(empty)'} |"
        for x, y in zip(DATA, decodes)
    ]
    assert rows[1:4] == expected and rows[0] == "| data | reconstruction |"
    assert rows[4] == "| greedy decode | ancestral draw |" and len(rows) == 4 + 1 + 5
    words = {"cat", "dog", "<unk>", "(empty)"}
    assert all(set(" ".join(r.strip("| ").split(" | ")).split()) <= words for r in rows[5:])


def test_table_refuses_a_model_without_token_sequences(tmp_path):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 1.0))

    with pytest.raises(ValueError, match="no observed site holds token sequences"):
        write_sentence_table(model, guide, torch.zeros(3), VOCABULARY, tmp_path / "s.md")


def test_a_sentence_runs_plots_include_its_sentence_table(tmp_path):
    from pyromim import build_model
    from pyromim.data import load_data
    from pyromim.plots import make_run_plots

    model = build_model("sentences_gru")
    data = load_data("sentences", seed=0)
    test = data.test.subset(torch.arange(6))
    splits = type(data)(train=test, val=None, test=test)
    paths = make_run_plots(model, model.spec, splits, tmp_path)
    table = tmp_path / "sentences.md"
    assert table in paths
    first = " ".join(test.vocabulary.decode(test.x[0].tolist()))
    assert f"| {first} |" in table.read_text()
