"""Text data: tokenizer, vocabulary (ids, files, checks), text files and their bad input, data set integration."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest
import torch

from pyromim.data import (
    SPECIAL_TOKENS,
    DataFileError,
    DataMismatchError,
    TextDataWarning,
    TextFileError,
    Vocabulary,
    VocabularyMismatchError,
    check_data_fits,
    load_data,
    load_file,
    load_text,
    tokenize,
)
from pyromim.data.text import BOS, EOS, PAD, UNK


def write(path, text: str | bytes):
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_tokenize_splits_on_whitespace_and_lowercases_on_request():
    assert tokenize("  The cat\tsat \n") == ["The", "cat", "sat"]
    assert tokenize("The CAT", lowercase=True) == ["the", "cat"]
    assert tokenize("   ") == []


def test_vocabulary_ids_are_fixed_and_ordered_by_frequency():
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a", "d"]])
    assert SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>", "<unk>") and (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    # a: 3, c: 2, then b and d once each, alphabetically
    assert vocab.tokens == SPECIAL_TOKENS + ("a", "c", "b", "d")
    assert [vocab.index(t) for t in ("<pad>", "<bos>", "<eos>", "<unk>", "a", "d", "zebra")] == [0, 1, 2, 3, 4, 7, 3]
    assert Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a", "d"]], min_count=2).tokens[4:] == ("a", "c")
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="special tokens"):
        Vocabulary(["<eos>"])
    with pytest.raises(ValueError, match="without whitespace"):
        Vocabulary(["a b"])


def test_encode_lays_out_ids_then_eos_then_pad_without_bos():
    vocab = Vocabulary(["a", "b"])
    x, unknown = vocab.encode([["a", "b", "a"], ["b"], ["q", "a"]], width=5)
    assert x.dtype == torch.long
    assert x.tolist() == [[4, 5, 4, EOS, PAD], [5, EOS, PAD, PAD, PAD], [UNK, 4, EOS, PAD, PAD]]
    assert unknown == 1
    assert vocab.decode(x[0]) == ["a", "b", "a"] and vocab.decode(x[2]) == ["<unk>", "a"]
    assert vocab.decode(x[1], strip=False) == ["b", "<eos>", "<pad>", "<pad>", "<pad>"]
    with pytest.raises(ValueError, match="needs width 4"):
        vocab.encode([["a", "b", "a"]], width=3)
    with pytest.raises(ValueError, match="outside this vocabulary of 6 tokens"):
        vocab.decode([6])


def test_vocabulary_file_round_trip_and_checks(tmp_path):
    vocab = Vocabulary(["héllo", "world"])
    path = vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.checksum == vocab.checksum and len(loaded) == 6
    assert Vocabulary(["world", "héllo"]).checksum != vocab.checksum  # same words, other ids
    loaded.check(expected_size=6, expected_checksum=vocab.checksum)
    with pytest.raises(VocabularyMismatchError, match=r"vocab.json: holds 6 tokens but 10 are expected"):
        Vocabulary.load(path).check(expected_size=10, source=str(path))
    with pytest.raises(VocabularyMismatchError, match="checksum .* differs"):
        loaded.check(expected_checksum=Vocabulary(["x"]).checksum)
    assert issubclass(VocabularyMismatchError, DataMismatchError)


def test_edited_or_foreign_vocabulary_files_are_refused(tmp_path):
    content = Vocabulary(["a", "b"]).to_dict()
    edited = dict(content, tokens=content["tokens"][:4] + ["b", "a"])
    write(tmp_path / "edited.json", json.dumps(edited))
    with pytest.raises(VocabularyMismatchError, match="edited.json: checksum"):
        Vocabulary.load(tmp_path / "edited.json")
    write(tmp_path / "old.json", json.dumps(dict(content, format=0)))
    with pytest.raises(VocabularyMismatchError, match="old.json: vocabulary format 0"):
        Vocabulary.load(tmp_path / "old.json")
    write(tmp_path / "specials.json", json.dumps(dict(content, tokens=["a", "b"])))
    with pytest.raises(VocabularyMismatchError, match="the first tokens must be"):
        Vocabulary.load(tmp_path / "specials.json")
    write(tmp_path / "broken.json", "{not json")
    with pytest.raises(VocabularyMismatchError, match="broken.json: not a readable vocabulary JSON file"):
        Vocabulary.load(tmp_path / "broken.json")
    with pytest.raises(VocabularyMismatchError, match="no such vocabulary file"):
        Vocabulary.load(tmp_path / "missing.json")


def test_load_text_builds_the_vocabulary_and_the_tensor(tmp_path):
    path = write(tmp_path / "s.txt", "the cat sat\nThe dog\na cat sat down\n")
    data = load_text(path)
    assert data.kind == "tokens" and data.x.dtype == torch.long and data.x.shape == (3, 5)
    assert data.name == str(path) and data.labels is None
    vocab = data.vocabulary
    assert [vocab.decode(row) for row in data.x] == [["the", "cat", "sat"], ["The", "dog"], ["a", "cat", "sat", "down"]]
    assert data.x[1].tolist() == [vocab.index("The"), vocab.index("dog"), EOS, PAD, PAD]
    assert not bool((data.x == BOS).any())
    lower = load_text(path, lowercase=True, max_length=6)
    # cat, sat and the twice each (alphabetical among equals), then the words seen once
    assert lower.x.shape == (3, 7) and lower.vocabulary.tokens[4:] == ("cat", "sat", "the", "a", "dog", "down")


def test_empty_lines_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "gaps.txt", "a b\n\n   \nc\n\n")
    with pytest.warns(TextDataWarning, match=r"gaps.txt: skipped 3 empty lines"):
        data = load_text(path)
    assert len(data) == 2


def test_long_sentences_are_refused_or_truncated_with_a_count(tmp_path):
    path = write(tmp_path / "long.txt", "a b\na b c d e\nc\na b c d\n")
    with pytest.raises(
        TextFileError, match=r"long.txt: line 2 holds 5 tokens, more than max_length=3; .*truncate=True"
    ):
        load_text(path, max_length=3)
    with pytest.warns(TextDataWarning, match=r"long.txt: truncated 2 of 4 sentences to max_length=3 tokens"):
        data = load_text(path, max_length=3, truncate=True)
    assert data.x.shape == (4, 4) and data.vocabulary.decode(data.x[1]) == ["a", "b", "c"]
    with pytest.raises(TextFileError, match="truncate=True needs max_length="):
        load_text(path, truncate=True)


def test_unknown_tokens_become_unk_and_are_counted(tmp_path):
    vocab = Vocabulary(["a", "b"])
    path = write(tmp_path / "u.txt", "a b zz\nyy a\n")
    with pytest.warns(TextDataWarning, match=r"u.txt: 2 of 5 tokens \(40.00%\) not in the given vocabulary"):
        data = load_text(path, vocabulary=vocab)
    assert data.x.tolist() == [[4, 5, UNK, EOS], [UNK, 4, EOS, PAD]] and data.vocabulary is vocab
    saved = vocab.save(tmp_path / "v.json")
    with pytest.warns(TextDataWarning):
        assert torch.equal(load_text(path, vocabulary=saved).x, data.x)
    with pytest.warns(TextDataWarning, match=r"3 of 5 tokens \(60.00%\) seen fewer than min_count=2 times"):
        rare = load_text(path, min_count=2)
    assert rare.vocabulary.tokens[4:] == ("a",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to report: no warning at all
        load_text(write(tmp_path / "clean.txt", "a b\nb a\n"), vocabulary=vocab)


def test_non_utf8_and_empty_files_are_refused(tmp_path):
    latin = write(tmp_path / "latin.txt", "fine line\nsecond\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(TextFileError, match=r"latin.txt: line 3 is not UTF-8 text \(byte 0xe9 at column 4\)"):
        load_text(latin)
    with pytest.raises(TextFileError, match=r"empty.txt: holds no sentences \(0 empty lines\)"):
        load_text(write(tmp_path / "empty.txt", ""))
    with pytest.raises(TextFileError, match=r"blank.txt: holds no sentences \(2 empty lines\)"):
        load_text(write(tmp_path / "blank.txt", "\n  \n"))
    with pytest.raises(TextFileError, match="no such text file"):
        load_text(tmp_path / "missing.txt")
    assert issubclass(TextFileError, DataFileError)
    bom = load_text(write(tmp_path / "bom.txt", "\ufeffhello world\n".encode()))
    assert bom.vocabulary.decode(bom.x[0]) == ["hello", "world"]


def test_gzipped_text_is_read_and_bounded(tmp_path):
    path = tmp_path / "s.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("a b\nc d e\n" * 50)
    data = load_text(path)
    assert data.x.shape == (100, 4)
    with pytest.raises(DataFileError, match="s.txt.gz: expands to more than"):
        load_text(path, max_decompressed_bytes=100)


def test_load_file_reads_txt_as_text_with_labels(tmp_path):
    path = write(tmp_path / "s.txt", "a b\nb c d\nc\n")
    data = load_file(path, labels=write(tmp_path / "y.csv", "1\n0\n2\n"), max_length=4)
    assert data.kind == "tokens" and data.x.shape == (3, 5) and data.labels.tolist() == [1, 0, 2]
    assert data.vocabulary is not None and data.vocabulary.decode(data.x[1]) == ["b", "c", "d"]
    with pytest.raises(DataFileError, match="labels of shape"):
        load_file(path, labels=write(tmp_path / "y2.csv", "1\n0\n"))
    with pytest.raises(DataFileError, match=r"unknown options \['max_len'\] for a text file"):
        load_file(path, max_len=4)
    with pytest.raises(DataFileError, match="a text file takes no binarize"):
        load_file(path, binarize=0.5)
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(DataFileError, match=r"a.npy: options \['lowercase'\] apply to .txt text files only"):
        load_file(tmp_path / "a.npy", lowercase=True)
    # a numeric .txt table is still read as CSV when a numeric kind is declared
    numbers = load_file(write(tmp_path / "n.txt", "1,2\n3,4\n"), kind="counts")
    assert numbers.kind == "counts" and numbers.x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_splits_of_text_keep_the_vocabulary_and_fit_checks_work(tmp_path):
    path = write(tmp_path / "s.txt", "".join(f"w{i % 7} w{i % 3} w{i % 5}\n" for i in range(40)))
    splits = load_data(str(path), seed=1, val_fraction=0.25, test_fraction=0.25)
    vocab = splits.train.vocabulary
    assert vocab is not None and len(splits.train) == 20
    for part in splits.parts().values():
        assert part.vocabulary is vocab and part.x.dtype == torch.long and part.kind == "tokens"
    check_data_fits(splits.train, event_shape=(4,), kind="tokens")
    with pytest.raises(DataMismatchError, match=r"items of shape \(4,\) .* expects items of shape \(6,\)"):
        check_data_fits(splits.train, event_shape=(6,), kind="tokens")
    assert splits.train.subset([0, 1]).vocabulary is vocab and splits.train.flatten().vocabulary is vocab


def test_dataset_refuses_ids_beyond_its_vocabulary():
    from pyromim.data import ArrayDataset

    with pytest.raises(ValueError, match="hold token id 6 but the vocabulary has only 6 tokens"):
        ArrayDataset(torch.tensor([[6, EOS]]), "tokens", vocabulary=Vocabulary(["a", "b"]))
    with pytest.raises(ValueError, match="a vocabulary goes with 'tokens' data, not 'counts'"):
        ArrayDataset(torch.tensor([[1, 2]]), "counts", vocabulary=Vocabulary(["a"]))


def test_special_tokens_in_the_text(tmp_path):
    # <unk> is a word of corpora that replaced their rare words already; the layout markers are refused
    data = load_text(write(tmp_path / "ptb.txt", "the <unk> sat\nthe cat\n"))
    assert data.x[0].tolist() == [data.vocabulary.index("the"), UNK, data.vocabulary.index("sat"), EOS]
    with pytest.raises(TextFileError, match=r"marked.txt: line 2 holds the special token '<eos>'"):
        load_text(write(tmp_path / "marked.txt", "a b\na b <eos>\n"))
    with pytest.raises(ValueError, match="sentence 0 holds '<pad>'"):
        Vocabulary(["a"]).encode([["a", "<pad>"]])
