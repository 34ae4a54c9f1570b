"""Text data: sentences, one a line, turned into padded tensors of token ids.

The pipeline is ``file -> lines -> tokenize -> Vocabulary -> (N, max_length + 1) tensor``:

* :func:`tokenize` splits a line on whitespace (optionally lower-cased first);
* :class:`Vocabulary` maps tokens to integer ids.  Four special tokens have
  fixed ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3; the
  words follow from id 4, most frequent first (ties in alphabetical order), so
  the same text always gives the same ids;
* each row of the tensor holds the sentence's ids, then one ``<eos>``, then
  ``<pad>`` up to the width.  ``<bos>`` is **not** stored: a decoder prepends
  it when it shifts the sequence right.  A sentence of ``L`` tokens therefore
  has ``L + 1`` scored positions (its tokens and the ``<eos>``).

Bad input is never passed over in silence:

* empty (or blank) lines are skipped and counted in a :class:`TextDataWarning`;
* a sentence longer than ``max_length`` tokens is refused, naming the file and
  line, unless ``truncate=True``, which cuts it and says how many were cut;
* tokens missing from a given (fixed) vocabulary become ``<unk>``, counted in a
  warning; with a vocabulary built from the file, words seen fewer than
  ``min_count`` times become ``<unk>`` too (also counted);
* a literal ``<unk>`` in the text (corpora such as the Penn Treebank already
  replaced their rare words) is that token; ``<pad>``, ``<bos>`` or ``<eos>``
  in a sentence is refused, naming the line;
* a file that is not UTF-8 text, or that holds no sentence, is refused.

A vocabulary saves to a JSON file with its format version and a SHA-256
checksum of its token list (:meth:`Vocabulary.save`, :meth:`Vocabulary.load`);
:meth:`Vocabulary.check` compares it with the size and checksum a model was
trained with.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from pyromim._atomic import atomic_write_text
from pyromim.data.checks import DataMismatchError
from pyromim.data.dataset import ArrayDataset
from pyromim.data.files import DataFileError, _open

PAD, BOS, EOS, UNK = 0, 1, 2, 3
#: The special tokens, in id order: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
_LAYOUT_TOKENS = frozenset(SPECIAL_TOKENS[:3])  # <pad>, <bos>, <eos>: never in a sentence (<unk> may be)
#: Version of the vocabulary file format written by :meth:`Vocabulary.save`.
VOCABULARY_FORMAT = 1


class TextDataWarning(UserWarning):
    """Text data were changed on loading: empty lines skipped, sentences truncated, unknown tokens replaced."""


class TextFileError(DataFileError):
    """A text data file that cannot be read: not UTF-8, empty, or a sentence longer than allowed."""


class VocabularyMismatchError(DataMismatchError):
    """A vocabulary (file) that does not match the one a model or data set expects."""


def tokenize(line: str, *, lowercase: bool = False) -> list[str]:
    """The tokens of one sentence: ``line`` split on whitespace, lower-cased first when asked."""
    return (line.lower() if lowercase else line).split()


class Vocabulary:
    """A fixed map between tokens and ids, with the four special tokens first.

    :param words: the ordinary tokens in id order (ids 4, 5, ...); they must be
        distinct, non-empty, free of whitespace and not special tokens.
    """

    def __init__(self, words: Sequence[str]):
        words = list(words)
        bad = [w for w in words if not isinstance(w, str) or not w or w != w.strip() or len(w.split()) != 1]
        if bad:
            raise ValueError(f"vocabulary words must be non-empty strings without whitespace; got {bad[:3]!r}")
        special = [w for w in words if w in SPECIAL_TOKENS]
        if special:
            raise ValueError(f"vocabulary words may not be special tokens {SPECIAL_TOKENS}; got {special!r}")
        repeated = [w for w, n in Counter(words).items() if n > 1]
        if repeated:
            raise ValueError(f"vocabulary words must be distinct; repeated: {repeated[:3]!r}")
        self._tokens: tuple[str, ...] = SPECIAL_TOKENS + tuple(words)
        self._ids: dict[str, int] = {t: i for i, t in enumerate(self._tokens)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_count: int = 1) -> Vocabulary:
        """The words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts = Counter(t for sentence in sentences for t in sentence if t not in SPECIAL_TOKENS)
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(kept)

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every token in id order, the special tokens first."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, checksum {self.checksum[:12]})"

    def index(self, token: str) -> int:
        """The id of ``token``; ``<unk>``'s id (3) when it is not in the vocabulary."""
        return self._ids.get(token, UNK)

    @property
    def checksum(self) -> str:
        """SHA-256 (hex) of the token list in id order: equal checksums mean equal id maps."""
        return hashlib.sha256(json.dumps(list(self._tokens), ensure_ascii=False).encode("utf-8")).hexdigest()

    def encode(self, sentences: Sequence[Sequence[str]], *, width: int | None = None) -> tuple[torch.Tensor, int]:
        """Ids of ``sentences`` as an ``(N, width)`` long tensor, and how many tokens became ``<unk>``.

        Each row is the sentence's ids, ``<eos>``, then ``<pad>``; ``width``
        defaults to the longest sentence plus one and must leave room for every
        sentence's ``<eos>``.
        """
        longest = max((len(s) for s in sentences), default=0)
        width = longest + 1 if width is None else width
        if longest + 1 > width:
            raise ValueError(f"a sentence of {longest} tokens needs width {longest + 1} (with <eos>), got {width}")
        x = torch.full((len(sentences), width), PAD, dtype=torch.long)
        unknown = 0
        for row, sentence in enumerate(sentences):
            marker = next((t for t in sentence if t in _LAYOUT_TOKENS), None)
            if marker is not None:
                raise ValueError(
                    f"sentence {row} holds {marker!r}; only <unk> of the special tokens may be in a sentence"
                )
            ids = [self._ids.get(t, UNK) for t in sentence]
            unknown += sum(1 for t in sentence if t not in self._ids)
            x[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            x[row, len(ids)] = EOS
        return x, unknown

    def decode(self, ids: Sequence[int] | torch.Tensor, *, strip: bool = True) -> list[str]:
        """The tokens of one row of ids; with ``strip``, up to the first ``<eos>`` and without ``<pad>``/``<bos>``."""
        values = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        bad = [i for i in values if not 0 <= i < len(self._tokens)]
        if bad:
            raise ValueError(f"ids {bad[:3]} are outside this vocabulary of {len(self)} tokens")
        if not strip:
            return [self._tokens[i] for i in values]
        out: list[str] = []
        for i in values:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self._tokens[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of a vocabulary file (format version, size, checksum, tokens)."""
        return {"format": VOCABULARY_FORMAT, "size": len(self), "checksum": self.checksum, "tokens": list(self._tokens)}

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary to a JSON file (see :meth:`to_dict`) atomically; returns the path."""
        return atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def from_dict(cls, content: Any, source: str = "vocabulary") -> Vocabulary:
        """A vocabulary from :meth:`to_dict`'s content, checked (format, special tokens, size, checksum)."""
        if not isinstance(content, dict) or not isinstance(content.get("tokens"), list):
            raise VocabularyMismatchError(f"{source}: not a pyromim vocabulary (a JSON object with a 'tokens' list)")
        if content.get("format") != VOCABULARY_FORMAT:
            raise VocabularyMismatchError(
                f"{source}: vocabulary format {content.get('format')!r}, this pyromim reads format "
                f"{VOCABULARY_FORMAT}; rebuild the vocabulary from the text"
            )
        tokens = content["tokens"]
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabularyMismatchError(
                f"{source}: the first tokens must be {list(SPECIAL_TOKENS)}, got {tokens[: len(SPECIAL_TOKENS)]}"
            )
        try:
            vocabulary = cls(tokens[len(SPECIAL_TOKENS) :])
        except ValueError as err:
            raise VocabularyMismatchError(f"{source}: {err}") from None
        vocabulary.check(expected_size=content.get("size"), expected_checksum=content.get("checksum"), source=source)
        return vocabulary

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file written by :meth:`save`; refuses an edited or damaged file."""
        path = Path(path)
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VocabularyMismatchError(f"{path}: no such vocabulary file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VocabularyMismatchError(f"{path}: not a readable vocabulary JSON file ({err})") from None
        return cls.from_dict(content, str(path))

    def check(
        self,
        *,
        expected_size: int | None = None,
        expected_checksum: str | None = None,
        source: str = "vocabulary",
    ) -> None:
        """Raise :class:`VocabularyMismatchError` unless this vocabulary has the expected size and checksum.

        :param expected_size: the number of tokens (specials included) a model was built for,
            e.g. the size of its embedding or its output layer.
        :param expected_checksum: the :attr:`checksum` recorded with the model.
        :param source: where the vocabulary came from, quoted in the message.
        """
        if expected_size is not None and int(expected_size) != len(self):
            raise VocabularyMismatchError(
                f"{source}: holds {len(self)} tokens but {int(expected_size)} are expected (the model's vocabulary "
                f"size); use the vocabulary file saved with the model's run"
            )
        if expected_checksum is not None and expected_checksum != self.checksum:
            raise VocabularyMismatchError(
                f"{source}: checksum {self.checksum[:12]}... differs from the expected {str(expected_checksum)[:12]}...: "
                f"the tokens or their ids differ; use the vocabulary file saved with the model's run"
            )


def _read_lines(path: Path, limit: int | None) -> list[str]:
    try:
        with _open(path, limit) as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise TextFileError(f"{path}: could not read the file ({err})") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise TextFileError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{raw[err.start]:02x} at column {column}); "
            f"save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    return text.splitlines()


class _Sentences(NamedTuple):
    """The sentences of a text file, and how many empty lines were skipped and long sentences cut."""

    sentences: list[list[str]]
    empty: int
    cut: int


def _read_sentences(
    path: Path, max_decompressed_bytes: int | None, *, lowercase: bool, max_length: int | None, truncate: bool
) -> _Sentences:
    """The tokens of each non-empty line of ``path`` (see :func:`load_text`): a line holding a token only
    the tensor layout may use is refused, and one longer than ``max_length`` cut or refused."""
    sentences: list[list[str]] = []
    empty = cut = 0
    for number, line in enumerate(_read_lines(path, max_decompressed_bytes), start=1):
        tokens = tokenize(line, lowercase=lowercase)
        if not tokens:
            empty += 1
            continue
        marker = next((t for t in tokens if t in _LAYOUT_TOKENS), None)
        if marker is not None:
            raise TextFileError(
                f"{path}: line {number} holds the special token {marker!r}, which only the tensor layout may use; "
                f"remove it (each line is one sentence, its end needs no marker)"
            )
        if max_length is not None and len(tokens) > max_length:
            if not truncate:
                raise TextFileError(
                    f"{path}: line {number} holds {len(tokens)} tokens, more than max_length={max_length}; "
                    f"raise max_length (from a spec: its [data] shape, one more than the longest sentence), or "
                    f"cut such sentences with truncate=True (--truncate on the command line)"
                )
            tokens, cut = tokens[:max_length], cut + 1
        sentences.append(tokens)
    return _Sentences(sentences, empty, cut)


def load_text(
    path: str | Path,
    *,
    vocabulary: Vocabulary | str | Path | None = None,
    min_count: int = 1,
    lowercase: bool = False,
    max_length: int | None = None,
    truncate: bool = False,
    max_decompressed_bytes: int | None = None,
) -> ArrayDataset:
    """Load a text file, one sentence a line, as ``"tokens"`` data with its vocabulary attached.

    :param path: a UTF-8 text file (``.gz`` compressed or not).
    :param vocabulary: a fixed :class:`Vocabulary` (or the path of a saved one);
        tokens it lacks become ``<unk>`` and are counted in a warning.  Without
        it the vocabulary is built from the file (see ``min_count``).
    :param min_count: when building the vocabulary, keep words seen at least
        this many times; rarer ones become ``<unk>``.
    :param lowercase: lower-case every line before splitting it on whitespace.
    :param max_length: the most tokens a sentence may hold (``<eos>`` not
        counted); default: the longest sentence.  The tensor has
        ``max_length + 1`` columns.
    :param truncate: cut longer sentences to ``max_length`` (with a warning
        that counts them) instead of refusing the file.
    :param max_decompressed_bytes: the most a ``.gz`` file may expand to
        (default: ``PYROMIM_MAX_DECOMPRESSED_MB``, else 1024 MB).
    :returns: an :class:`ArrayDataset` of kind ``"tokens"`` holding an
        ``(N, max_length + 1)`` long tensor (ids, ``<eos>``, ``<pad>``...) and the
        vocabulary in its ``vocabulary`` field.
    """
    path = Path(path)
    if not path.is_file():
        raise TextFileError(f"{path}: no such text file")
    if max_length is not None and max_length < 1:
        raise TextFileError(f"{path}: max_length must be at least 1 token, got {max_length}")
    if truncate and max_length is None:
        raise TextFileError(f"{path}: truncate=True needs max_length= (the number of tokens to keep)")
    read = _read_sentences(path, max_decompressed_bytes, lowercase=lowercase, max_length=max_length, truncate=truncate)
    sentences, empty, cut = read.sentences, read.empty, read.cut
    if not sentences:
        raise TextFileError(f"{path}: holds no sentences ({empty} empty lines); give one sentence a line")
    if empty:
        warnings.warn(f"{path}: skipped {empty} empty lines", TextDataWarning, stacklevel=2)
    if cut:
        warnings.warn(
            f"{path}: truncated {cut} of {len(sentences)} sentences to max_length={max_length} tokens",
            TextDataWarning,
            stacklevel=2,
        )
    if vocabulary is None:
        vocab = Vocabulary.build(sentences, min_count=min_count)
    else:
        vocab = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary.load(vocabulary)
    width = (max_length if max_length is not None else max(len(s) for s in sentences)) + 1
    x, unknown = vocab.encode(sentences, width=width)
    if unknown:
        total = sum(len(s) for s in sentences)
        why = (
            "not in the given vocabulary" if vocabulary is not None else f"seen fewer than min_count={min_count} times"
        )
        warnings.warn(
            f"{path}: {unknown} of {total} tokens ({unknown / total:.2%}) {why} were replaced by <unk>",
            TextDataWarning,
            stacklevel=2,
        )
    return ArrayDataset(x, "tokens", None, str(path), vocabulary=vocab)
