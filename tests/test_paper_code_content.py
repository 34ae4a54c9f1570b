"""paper.code_content: which corpus factors a code holds, checked on codes built to hold known factors."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from paper.code_content import content_table, factor_sentences, generator_ceiling, main, probe
from pyromim.data import SentenceGenerator

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_probes_find_the_factors_a_code_was_built_from_and_not_the_others():
    generator = SentenceGenerator()
    _, factors = factor_sentences(generator, 800, seed=4)
    rng = np.random.default_rng(0)
    # style as a one-hot, length as a coordinate, both well above the noise; nothing of the topic
    style = np.eye(4)[factors["style"]] * 3.0
    length = (factors["length"][:, None] - 12.0) * 2.0
    codes = np.concatenate([style, length, np.zeros((800, 5))], axis=1) + 0.1 * rng.standard_normal((800, 10))
    found = probe(codes, factors)
    assert found["style_knn5"] > 0.95 and found["style_linear"] > 0.95
    assert found["length_knn5"] > 0.9
    # chance is 0.1 (10 topics): with 800 points its standard error is about 0.011
    assert found["topic_knn5"] < 0.2 and found["topic_linear"] < 0.2


def test_the_generator_ceiling_reads_topic_and_style_off_a_sentence():
    generator = SentenceGenerator()
    tokens, factors = factor_sentences(generator, 1000, seed=4)
    ceiling = generator_ceiling(generator, tokens, factors)
    # the exact posterior knows the style from the function words and the topic from the content words
    assert ceiling["style"] > 0.99 and ceiling["topic"] > 0.99
    assert ceiling["factor_decode_errors"] == generator.factor_decode_errors()
    # against shuffled labels the same posterior is at chance
    shuffled = {**factors, "topic": np.random.default_rng(1).permutation(factors["topic"])}
    assert generator_ceiling(generator, tokens, shuffled)["topic"] < 0.2


def test_the_guide_quotes_the_committed_code_content_table():
    content = json.loads((ROOT / "docs" / "paper_results" / "code_content.json").read_text())
    table = content_table(content)
    guide = (ROOT / "docs" / "guide" / "which_objective.rst").read_text()
    tables = (ROOT / "docs" / "paper_results" / "tables.md").read_text()
    assert table in tables
    for row in table.splitlines()[2:]:  # the guide's csv-table: the same cells, quoted
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert ", ".join(f'"{c}"' for c in cells) in guide, row


def test_files_it_cannot_read_are_refused_by_name(tmp_path):
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"runs": []}))
    with pytest.raises(SystemExit, match="not a probes file"):
        main(["--table", str(other)])
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SystemExit, match="neither a run directory nor a sweep's results file"):
        main([str(tmp_path / "other.json")])
    (tmp_path / "notes.md").write_text("# not json\n")
    with pytest.raises(SystemExit, match="notes.md: not a sweep's results file"):
        main([str(tmp_path / "notes.md")])
    with pytest.raises(SystemExit, match="no such run directory or results file"):
        main([str(tmp_path / "missing")])
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit, match="not a run on the built-in sentences"):
        main([str(tmp_path / "run")])
