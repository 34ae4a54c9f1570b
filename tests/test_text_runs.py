"""Runs on text: the vocabulary is saved with the run, reused by evaluate_run, and a mismatch is refused."""

from __future__ import annotations

import json
import shutil

import pytest

from pyromim.data import DataMismatchError, TextDataWarning, Vocabulary, VocabularyMismatchError, load_text
from pyromim.experiments import evaluate_run, load_run_vocabulary, run
from pyromim.specs import ModelSpec, catalogue_dir
from pyromim.specs.toml_io import loads as toml_loads

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "runs", "sleeps", "sings", "fast"]


def token_spec(width: int, vocab_size: int) -> ModelSpec:
    """The toy4 spec turned into a tiny model of flat token vectors with a categorical likelihood."""
    table = toml_loads((catalogue_dir() / "toy4.toml").read_text(encoding="utf-8"))
    table["name"] = "tokens_tiny"
    table["data"] = {"kind": "tokens", "shape": [width], "vocab_size": vocab_size}
    table["model"] = {"latent_dim": 2, "likelihood": "categorical", "prior": "normal"}
    table["training"].update(epochs=1, batch_size=16, patience=0)
    return ModelSpec.from_dict(table)


def write_sentences(path, n: int, shift: int):
    lines = [" ".join(WORDS[(i * k + shift) % len(WORDS)] for k in range(1 + i % 5)) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    train = write_sentences(folder / "train.txt", 80, 0)
    vocabulary = load_text(train).vocabulary
    spec = token_spec(width=6, vocab_size=len(vocabulary))
    out = run(spec, out_dir=folder / "run", data=str(train), plots=False, progress=False, num_samples=5)
    return out, vocabulary, folder


def test_the_run_saves_its_vocabulary(text_run):
    out, vocabulary, _ = text_run
    assert Vocabulary.load(out.out_dir / "vocabulary.json") == vocabulary
    info = json.loads((out.out_dir / "run.json").read_text(encoding="utf-8"))
    assert info["vocabulary"] == {"file": "vocabulary.json", "size": len(vocabulary), "checksum": vocabulary.checksum}
    assert "vocabulary.json" in info["files"]


def test_load_run_vocabulary_checks_the_file_against_the_run(text_run, tmp_path):
    out, vocabulary, _ = text_run
    assert load_run_vocabulary(out.out_dir) == vocabulary
    assert load_run_vocabulary(out.out_dir / "model.pt") == vocabulary
    assert load_run_vocabulary(tmp_path) is None  # not a run on text
    copy = shutil.copytree(out.out_dir, tmp_path / "copy")
    Vocabulary(reversed(vocabulary.tokens[4:])).save(copy / "vocabulary.json")
    with pytest.raises(VocabularyMismatchError, match=r"copy/vocabulary.json: checksum .* differs"):
        load_run_vocabulary(copy)
    (copy / "vocabulary.json").unlink()
    with pytest.raises(
        VocabularyMismatchError, match=rf"missing, but the run recorded a vocabulary of {len(vocabulary)}"
    ):
        load_run_vocabulary(copy / "checkpoints" / "best.ckpt")


def test_evaluate_run_reads_new_text_with_the_runs_vocabulary(text_run):
    out, vocabulary, folder = text_run
    # other word frequencies (a vocabulary built from this file would give other ids), shorter sentences
    other = write_sentences(folder / "other.txt", 40, 3)
    assert load_text(other).vocabulary != vocabulary
    with pytest.warns(TextDataWarning, match=r"other.txt: 8 of 120 tokens .* not in the given vocabulary"):
        result = evaluate_run(out.out_dir, data=str(other), split="train", num_samples=5)
    assert result.n_items > 0 and result.metrics


def test_data_with_another_vocabulary_are_refused(text_run):
    out, vocabulary, folder = text_run
    swapped = Vocabulary(reversed(vocabulary.tokens[4:]))
    path = write_sentences(folder / "again.txt", 40, 0)
    with pytest.raises(VocabularyMismatchError, match=r"again.txt \(train\)'.*checksum .* differs"):
        evaluate_run(out.out_dir, data=str(path), split="train", data_options={"vocabulary": swapped})


def test_a_vocabulary_larger_than_the_specs_is_refused_before_training(tmp_path):
    train = write_sentences(tmp_path / "train.txt", 40, 0)
    size = len(load_text(train).vocabulary)
    with pytest.raises(DataMismatchError, match=rf"vocabulary of {size} tokens but the spec's \[data\] vocab_size is"):
        run(token_spec(6, size + 1), out_dir=tmp_path / "run", data=str(train), plots=False, progress=False)


def test_command_line_trains_on_text_padded_to_the_specs_width(tmp_path, capsys):
    from pyromim.cli import main

    train = write_sentences(tmp_path / "train.txt", 60, 0)
    vocabulary = load_text(train, lowercase=True).vocabulary
    spec = tmp_path / "tokens.toml"
    spec.write_text(token_spec(width=8, vocab_size=len(vocabulary)).to_toml(), encoding="utf-8")
    common = ["train", str(spec), "--epochs", "1", "--no-plots", "--no-progress", "--num-samples", "5"]
    # sentences of at most 5 words are padded to the spec's 8 columns (max_length 7)
    assert main([*common, "--data", str(train), "--lowercase", "--out", str(tmp_path / "run")]) == 0
    assert Vocabulary.load(tmp_path / "run" / "vocabulary.json") == vocabulary
    capsys.readouterr()
    long = tmp_path / "long.txt"
    long.write_text("red blue\n" + " ".join(WORDS[:9]) + "\n", encoding="utf-8")
    assert main([*common, "--data", str(long), "--out", str(tmp_path / "long")]) == 2
    assert "long.txt: line 2 holds 9 tokens, more than max_length=7; " in capsys.readouterr().err
    assert main([*common, "--lowercase", "--out", str(tmp_path / "none")]) == 2
    assert "the text options apply to a data file" in capsys.readouterr().err


def test_mim_with_an_autoregressive_decoder_under_a_warm_up_gets_the_measured_hint():
    import dataclasses

    from pyromim.experiments.hints import warmup_hint
    from pyromim.specs import resolve_spec

    sentences = resolve_spec("sentences_gru")
    sentences = sentences.replace(training=dataclasses.replace(sentences.training, warmup_epochs=3, lr_schedule="noam"))
    hint = warmup_hint(sentences, "mim")
    assert (
        hint
        and hint.startswith("MIM with")
        and "'gru' under a 3-epoch warm-up and the Noam learning rate:" in hint
        and "--warmup-epochs 0 --lr-schedule constant" in hint
    )
    for objective in ("amim", "mim_score", "mim_encoder_side"):
        assert "--warmup-epochs 0 --lr-schedule constant" in warmup_hint(sentences, objective), objective
    assert warmup_hint(sentences, "elbo") is None
    from pyromim.experiments.hints import stopping_hint

    assert "--patience 0" in stopping_hint(sentences, "mim_encoder_side")
    assert stopping_hint(sentences, "mim") is None
    unstopped = sentences.replace(training=dataclasses.replace(sentences.training, patience=0))
    assert stopping_hint(unstopped, "mim_encoder_side") is None
    from pyromim.experiments.hints import score_hint

    for objective in ("mim_score", "mim_score_loo"):
        assert "empty sentence" in score_hint(sentences, objective), objective
    assert score_hint(sentences, "mim") is None and score_hint(sentences, "mim_encoder_side") is None
    assert score_hint(resolve_spec("digits_normal"), "mim_score") is None  # not autoregressive
    from pyromim.experiments.hints import encoder_side_hint

    digits = resolve_spec("digits_normal")
    assert "'bernoulli', which is not autoregressive: " in encoder_side_hint(digits, "mim_encoder_side")
    assert encoder_side_hint(digits, "mim") is None
    assert encoder_side_hint(sentences, "mim_encoder_side") is None  # autoregressive: where it was measured to help
    assert encoder_side_hint(resolve_spec("digits_pixelcnn"), "mim_encoder_side") is None
    assert warmup_hint(resolve_spec("digits_normal"), "mim") is None  # not autoregressive: nothing was measured
    plain = sentences.replace(training=dataclasses.replace(sentences.training, warmup_epochs=0, lr_schedule="constant"))
    assert warmup_hint(plain, "mim") is None
    noam = sentences.replace(training=dataclasses.replace(sentences.training, warmup_epochs=0))
    assert "'gru' under the Noam learning rate:" in warmup_hint(noam, "mim")
