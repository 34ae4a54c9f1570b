"""Loading user data files: ``.npy``, ``.npz``, ``.csv`` and MNIST-format IDX files.

Formats (chosen by the file name; IDX files are also recognised by their magic
number, and ``.gz`` compression is read transparently for ``.npy``, IDX and CSV):

* ``.npy``: one array of shape ``(N, ...)``.
* ``.npz``: the array under ``key`` (default: ``"x"``, else the only array in
  the file); labels under ``"y"`` or ``"labels"`` when present.
* ``.csv``: numeric table, one item per row; a first row that does not parse as
  numbers is a header.  ``label_column`` (a header name or column index) moves
  one column into the labels.
* ``.txt`` (optionally ``.gz``): text, one sentence a line, read by
  :func:`pyromim.data.load_text` into ``"tokens"`` data with its vocabulary
  (options ``vocabulary``, ``min_count``, ``lowercase``, ``max_length``,
  ``truncate``).  A ``.txt`` file of numbers is read as CSV only when a numeric
  ``kind`` (``binary``, ``grey``, ``continuous``, ``counts``) is declared.
* IDX (``*-ubyte``, ``*.idx``, ``*.idx3-ubyte`` ... optionally ``.gz``): the
  MNIST format, a 4-byte magic number ``0x00 0x00 type ndim``, then ``ndim``
  big-endian int32 sizes, then the values big-endian.  Unsigned-byte images are
  scaled by 1/255 to grey levels in [0, 1] (``scale_bytes=False`` keeps 0..255).

Compressed input is bounded: a ``.gz`` file (and each array of an ``.npz``
archive) may expand to at most :func:`max_decompressed_bytes` (1024 MB unless
the environment variable ``PYROMIM_MAX_DECOMPRESSED_MB`` or the
``max_decompressed_bytes=`` argument says otherwise); the size is checked while
reading, so a small file that expands to gigabytes is refused before it fills
the memory.

Labels may also come from a separate file (``labels=PATH``, any of the formats
above holding one integer per item).  The data kind is inferred from the values
(see :func:`pyromim.data.dataset.infer_kind`) unless given; ``binarize=t`` maps
values ``> t`` to 1 and the rest to 0.
"""

from __future__ import annotations

import array
import csv
import gzip
import io
import logging
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

from pyromim.data.dataset import KIND_SUPPORT, ArrayDataset, describe_values, infer_kind, values_fit_kind

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = (
    ".npy, .npz, .csv (.npy and .csv optionally .gz), .txt sentences (optionally .gz), MNIST IDX files (optionally .gz)"
)

#: The options :func:`load_file` passes on to :func:`pyromim.data.load_text` for ``.txt`` files.
TEXT_OPTIONS = ("vocabulary", "min_count", "lowercase", "max_length", "truncate")

# IDX type byte -> numpy big-endian dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataFileError(ValueError):
    """A data file that cannot be read or whose contents are malformed."""


#: Environment variable raising (or lowering) the decompressed-size limit, in MB.
MAX_DECOMPRESSED_ENV = "PYROMIM_MAX_DECOMPRESSED_MB"
DEFAULT_MAX_DECOMPRESSED_MB = 1024


def max_decompressed_bytes() -> int:
    """The most bytes a compressed data file may expand to: ``PYROMIM_MAX_DECOMPRESSED_MB`` (default 1024) MB."""
    text = os.environ.get(MAX_DECOMPRESSED_ENV)
    if text is None:
        return DEFAULT_MAX_DECOMPRESSED_MB * 2**20
    try:
        mb = float(text)
    except ValueError:
        mb = float("nan")
    if not mb > 0:
        raise DataFileError(f"{MAX_DECOMPRESSED_ENV}={text!r} must be a number of megabytes > 0")
    if not math.isfinite(mb):
        raise DataFileError(f"{MAX_DECOMPRESSED_ENV}={text!r} must be a finite number of megabytes")
    return int(mb * 2**20)


def _too_large(path: Path, limit: int, what: str) -> DataFileError:
    return DataFileError(
        f"{path}: {what} more than {limit / 2**20:g} MB, the limit for compressed data files; if the file is "
        f"trusted, raise the limit with {MAX_DECOMPRESSED_ENV}=MB (pyromim's --max-decompressed-mb MB, "
        f"or max_decompressed_bytes= when loading)"
    )


class _Bounded(io.RawIOBase):
    """A decompressing reader that refuses to give more than ``limit`` bytes in all."""

    def __init__(self, raw: IO[bytes], path: Path, limit: int):
        self._raw, self._path, self._limit, self._count = raw, path, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            n = self._raw.readinto(view[: max(1, min(len(view), self._limit + 1 - self._count))])  # type: ignore[attr-defined]
        except zlib.error as err:  # corrupt deflate data (gzip's own header and CRC errors are OSError/EOFError)
            raise DataFileError(f"{self._path}: the compressed data are corrupt ({err})") from None
        self._count += n
        if self._count > self._limit:
            raise _too_large(self._path, self._limit, "expands to")
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open(path: Path, limit: int | None = None) -> IO[bytes]:
    if path.suffix != ".gz":
        return open(path, "rb")
    limit = max_decompressed_bytes() if limit is None else limit
    return cast(IO[bytes], io.BufferedReader(_Bounded(cast(IO[bytes], gzip.open(path, "rb")), path, limit)))


def _stem_suffix(path: Path) -> str:
    """The format suffix, ignoring a trailing ``.gz``."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def _looks_like_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if "idx" in name or name.endswith("-ubyte"):
        return True
    try:
        with _open(path) as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in _IDX_DTYPES and 1 <= head[3] <= 4


def read_idx(path: str | Path, *, max_decompressed_bytes: int | None = None) -> np.ndarray:
    """Read an IDX (MNIST-format) file, gzipped or not, into a native-endian array.

    The header's declared size is checked against the file (and, for ``.gz``,
    against the decompression limit) before the values are read.
    """
    path = Path(path)
    with _open(path, max_decompressed_bytes) as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_DTYPES:
            raise DataFileError(
                f"{path}: not an IDX file (the first bytes must be 0x00 0x00 <type> <ndim> with type one of "
                f"{sorted(hex(t) for t in _IDX_DTYPES)}; got {head!r})"
            )
        dtype, ndim = _IDX_DTYPES[head[2]], head[3]
        sizes = f.read(4 * ndim)
        if len(sizes) < 4 * ndim:
            raise DataFileError(
                f"{path}: IDX header declares {ndim} dimensions but the file ends after {4 + len(sizes)} bytes"
            )
        shape = tuple(int(d) for d in np.frombuffer(sizes, dtype=">i4", count=ndim))
        expected = math.prod(shape) * dtype.itemsize
        available = None if path.suffix == ".gz" else path.stat().st_size - 4 - 4 * ndim
        limit = max_decompressed_bytes if max_decompressed_bytes is not None else _default_limit(path)
        if limit is not None and expected > limit:
            raise _too_large(path, limit, f"declares shape {shape} of {dtype.name}, {expected / 2**20:.4g} MB,")
        values = np.empty(math.prod(shape), dtype=dtype)  # read in place: no second copy of the bytes
        filled = _read_into(f, values) if available is None or available == expected else 0
        extra = f.read(1) if filled == expected else b""
    held = available if available is not None else filled + len(extra)
    if filled != expected or extra:
        raise DataFileError(
            f"{path}: IDX header declares shape {shape} of {dtype.name} ({expected} bytes of values) "
            f"but the file holds {'more than ' if extra else ''}{held} bytes after the header; "
            f"the file is truncated or corrupt"
        )
    if dtype.itemsize > 1:
        values = values.byteswap(inplace=True).view(dtype.newbyteorder("=")) if dtype.byteorder != "=" else values
    return values.reshape(shape)


#: Bytes asked of a file at a time: a decompressor's output for one request is a temporary of this size.
READ_CHUNK = 2**20


def _read_into(f: IO[bytes], values: np.ndarray) -> int:
    """Fill ``values``'s bytes from ``f``; the number of bytes read (fewer when the file ends first)."""
    view = values.reshape(-1).view(np.uint8).data  # the bytes of values, writable in place
    filled = 0
    while filled < len(view):
        n = f.readinto(view[filled : filled + READ_CHUNK])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def _read_npy(path: Path, limit: int | None) -> np.ndarray:
    """Read a ``.npy`` file, gzipped or not, checking its header's declared size before allocating.

    A plain file must hold exactly the declared bytes after its header; a
    ``.gz`` one may declare at most the decompression limit.
    """
    if limit is None:
        limit = _default_limit(path)
    with _open(path, limit) as f:
        return _npy_from(f, path, None if path.suffix == ".gz" else path.stat().st_size, limit)


def _npy_from(f: IO[bytes], path: Path, size: int | None, limit: int | None, what: str = "") -> np.ndarray:
    """The array of the ``.npy`` stream ``f`` of ``size`` bytes in all (``None``: unknown, then at most
    ``limit``); ``what`` names an archive member in errors."""
    fmt = np.lib.format
    where = f"{path}{what}"
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version[0]}.{version[1]}, of structured arrays; numbers are needed")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
    except ValueError as err:
        raise DataFileError(f"{where}: not a .npy file, or its header is corrupt ({err})") from None
    if dtype.hasobject:
        raise DataFileError(
            f"{where}: holds Python objects ({dtype}), which are not read (loading them would run code "
            f"from the file); save a numeric array with numpy.save"
        )
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if size is not None:
        held = size - f.tell()
        if held != expected:
            raise DataFileError(
                f"{where}: .npy header declares shape {shape} of {dtype} ({expected} bytes of values) but "
                f"the file holds {held} bytes after the header; the file is truncated or corrupt"
            )
    elif limit is not None and expected > limit:
        raise _too_large(path, limit, f"declares shape {shape} of {dtype}, {expected / 2**20:.4g} MB,")
    values = np.empty(count, dtype=dtype)
    filled = _read_into(f, values)
    if filled < expected:
        raise DataFileError(
            f"{where}: .npy header declares shape {shape} of {dtype} ({expected} bytes of values) "
            f"but the file ends after {filled}; the file is truncated or corrupt"
        )
    if f.read(1):
        raise DataFileError(f"{where}: holds more bytes than its .npy header declares; the file is corrupt")
    return values.reshape(shape, order="F" if fortran_order else "C")


def _default_limit(path: Path) -> int | None:
    return max_decompressed_bytes() if path.suffix == ".gz" else None


def _read_csv(
    path: Path, label_column: str | int | None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    # parsed row by row into one float buffer (8 bytes a value), not a list of lists of strings
    header: list[str] | None = None
    values = array.array("d")
    width: int | None = None
    n_rows = 0
    if limit is None:
        limit = _default_limit(path)
    with _open(path, limit) as f:
        # utf-8-sig: a byte-order mark is dropped, not read into the first value (which would turn a
        # header-less file's first row into a header)
        reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8-sig"))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise DataFileError(
                    f"{path}: line {reader.line_num} is not a table row of numbers ({err}); "
                    f"a data CSV holds one item per line, its numbers separated by commas"
                ) from None
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            try:
                numbers = [float(c) for c in row]
            except ValueError as err:
                if n_rows == 0 and header is None:
                    header = [c.strip() for c in row]
                    continue
                raise DataFileError(_not_a_number(path, line, row, header, label_column)) from err
            if width is None:
                width = len(numbers)
            elif len(numbers) != width:
                raise DataFileError(
                    f"{path}: CSV rows have different numbers of columns (line {line} has {len(numbers)}, "
                    f"the first row {width})"
                )
            values.extend(numbers)
            n_rows += 1
            if limit is not None and values.itemsize * len(values) > limit:
                raise _too_large(path, limit, f"parses to {n_rows} rows of {width} numbers,")
    if width is None:
        if header is None:
            raise DataFileError(f"{path}: the CSV file holds no rows")
        raise DataFileError(f"{path}: the CSV file holds a header and no rows of numbers")
    table = np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)
    if label_column is None:
        if header is not None:
            _suggest_label_column(path, header, table)
        return table, None
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            raise DataFileError(f"{path}: label column {label_column!r} not found; the header is {header}")
        col = header.index(label_column)
    else:
        col = label_column
    if not -table.shape[1] <= col < table.shape[1]:
        raise DataFileError(f"{path}: label column {col} out of range for {table.shape[1]} columns")
    return np.delete(table, col, axis=1), table[:, col]


#: Header names that usually mean a column of class labels.
_LABEL_NAMES = ("label", "labels", "class", "target", "y", "digit", "category")


def _suggest_label_column(path: Path, header: list[str], table: np.ndarray) -> None:
    """Warn when a CSV with a header keeps a column that looks like labels among its data columns:
    one named like labels, or the only column of integers among non-integer ones."""
    integral = [bool(np.all(table[:, i] == np.round(table[:, i]))) for i in range(table.shape[1])]
    named = [i for i, name in enumerate(header[: table.shape[1]]) if name.lower() in _LABEL_NAMES]
    lone = [i for i, flag in enumerate(integral) if flag] if sum(integral) == 1 and len(integral) > 2 else []
    candidates = named or lone
    if candidates:
        col = candidates[0]
        name = header[col] if col < len(header) else str(col)
        logger.warning(
            "%s: column %r holds %s and is read as data; if it holds the labels, pass --label-column %s "
            "(label_column= when loading)",
            path,
            name,
            "integers" if integral[col] else "numbers",
            name,
        )


def _not_a_number(path: Path, line: int, row: list[str], header: list[str] | None, label_column: object) -> str:
    """Why a CSV row does not parse: the first cell that is not a number, its column named, with the fix."""
    col = next(i for i, cell in enumerate(row) if not _is_number(cell))
    name = header[col] if header is not None and col < len(header) else None
    where = f"column {col}" + (f" ({name!r})" if name else "")
    text = f"{path}: CSV holds a value that is not a number on line {line}: {where} holds {row[col][:40]!r}"
    if label_column is None:
        option = name if name else str(col)
        return (
            f"{text}; remove the column, or, if it holds the class labels, write them as integers "
            f"and pass --label-column {option} (label_column= when loading)"
        )
    return f"{text}; every value of a data CSV must be a number"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_npz_sizes(path: Path, limit: int | None) -> None:
    """Refuse an ``.npz`` whose arrays declare more than ``limit`` bytes (a zip bomb) before any is read."""
    limit = max_decompressed_bytes() if limit is None else limit
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > limit:
                raise _too_large(path, limit, f"holds array {info.filename!r} that expands to")


def _read_npz(path: Path, key: str | None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    _check_npz_sizes(path, limit)
    with zipfile.ZipFile(path) as archive:
        # each array is a .npy member, read with its header checked against the member's size
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        names = list(members)
        if key is None:
            candidates = [k for k in names if k not in ("y", "labels")]
            key = "x" if "x" in names else (candidates[0] if len(candidates) == 1 else None)
            if key is None:
                raise DataFileError(
                    f"{path}: which array holds the data? save it under the name 'x' (or, loading in Python, "
                    f"pass key=), one of {names}"
                )
        if key not in names:
            raise DataFileError(f"{path}: no array {key!r}; the file holds {names}")
        labels_key = next((k for k in ("y", "labels") if k in names and k != key), None)

        def read(name: str) -> np.ndarray:
            info = members[name]
            with archive.open(info) as f:
                return _npy_from(f, path, info.file_size, limit, f" (array {name!r})")

        return read(key), (read(labels_key) if labels_key else None)


def read_array(
    path: str | Path,
    *,
    key: str | None = None,
    label_column: str | int | None = None,
    max_decompressed_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(values, labels or None)`` from any supported file, without interpretation.

    :param max_decompressed_bytes: the most a ``.gz`` file or an ``.npz`` array
        may expand to (default :func:`max_decompressed_bytes`).
    """
    limit = max_decompressed_bytes
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such data file")
    suffix = _stem_suffix(path)
    try:
        if suffix == ".npy":
            return _read_npy(path, limit), None
        if suffix == ".npz":
            return _read_npz(path, key, limit)
        if suffix in (".csv", ".txt"):
            return _read_csv(path, label_column, limit)
        if _looks_like_idx(path):
            return read_idx(path, max_decompressed_bytes=limit), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        # NotImplementedError: zipfile on a corrupt .npz naming an unknown compression method
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{path}: could not read the file ({err})") from err
    raise DataFileError(f"{path}: unknown data file format; supported formats: {SUPPORTED_FORMATS}")


#: The largest label size: every integer up to 2**53 is exact as a float64 and as an int64.
MAX_LABEL = 2**53


def _as_labels(values: np.ndarray, n: int, source: str) -> torch.Tensor:
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != n:
        raise DataFileError(
            f"{source}: labels of shape {values.shape} do not match {n} data items; "
            f"a label file must hold one integer per item"
        )
    if values.dtype.kind not in "biuf":
        raise DataFileError(f"{source}: labels must be integers, got {values.dtype} values")
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise DataFileError(f"{source}: labels must be integers, got non-integer values")
    if values.size and not np.all(np.abs(values.astype(np.float64)) <= MAX_LABEL):
        worst = values.reshape(-1)[np.argmax(np.abs(values.astype(np.float64)))]
        raise DataFileError(
            f"{source}: labels must be class numbers of at most 2**53 in size (exact as integers), got {worst:g}; "
            f"renumber the classes 0, 1, 2 ..."
        )
    return torch.as_tensor(values.astype(np.int64))


def load_file(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    kind: str | None = None,
    key: str | None = None,
    label_column: str | int | None = None,
    binarize: float | None = None,
    scale_bytes: bool = True,
    flatten: bool = False,
    max_decompressed_bytes: int | None = None,
    **text_options: Any,
) -> ArrayDataset:
    """Load a data file (and optionally a separate label file) into an :class:`ArrayDataset`.

    A ``.txt`` file is text, one sentence a line (unless a numeric ``kind`` is
    declared): it is read by :func:`pyromim.data.load_text`, which takes
    ``text_options`` (``vocabulary``, ``min_count``, ``lowercase``,
    ``max_length``, ``truncate``); they apply to text files only.

    :param kind: declare the kind instead of inferring it; the values must fit it.
    :param binarize: threshold ``t``: values ``> t`` become 1, others 0 (kind ``binary``).
    :param scale_bytes: scale unsigned-byte IDX images by 1/255 to grey levels.
    :param flatten: flatten each item to a vector.
    :param max_decompressed_bytes: the most a compressed file may expand to
        (default: ``PYROMIM_MAX_DECOMPRESSED_MB``, else 1024 MB).
    """
    path = Path(path)
    limit = max_decompressed_bytes
    if _stem_suffix(path) == ".txt" and kind in (None, "tokens"):
        numeric_options = binarize is not None or flatten or key is not None or label_column is not None
        return _load_text_file(path, labels, limit, text_options, numeric_options=numeric_options)
    if text_options:
        raise DataFileError(f"{path}: options {sorted(text_options)} apply to .txt text files only")
    values, file_labels = read_array(path, key=key, label_column=label_column, max_decompressed_bytes=limit)
    if values.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: holds {values.dtype} values; numeric data are needed")
    if values.ndim == 0 or values.shape[0] == 0:
        raise DataFileError(f"{path}: holds no items (shape {values.shape})")
    if values.ndim == 1:
        values = values[:, None]
    if scale_bytes and values.dtype == np.uint8 and _stem_suffix(path) not in (".npy", ".npz", ".csv"):
        values = values.astype(np.float32)
        values /= 255.0  # in place: one float copy of the bytes, not two
    if binarize is not None:
        values = _binarized(path, values, binarize)
        kind = kind or "binary"
    x = torch.as_tensor(np.ascontiguousarray(values))
    kind = _checked_kind(path, x, kind)
    x = x.to(torch.long) if kind == "tokens" else x.to(torch.float32)
    label_tensor = None
    if labels is not None:
        label_tensor = _label_file(labels, x.shape[0], limit)
    elif file_labels is not None:
        label_tensor = _as_labels(file_labels, x.shape[0], str(path))
    data = ArrayDataset(x, kind, label_tensor, str(path))
    return data.flatten() if flatten else data


def _load_text_file(
    path: Path,
    labels: str | Path | None,
    limit: int | None,
    text_options: dict[str, Any],
    *,
    numeric_options: bool,
) -> ArrayDataset:
    """:func:`load_file` of a text file (see :func:`pyromim.data.load_text`), refusing the options of
    numeric files (``numeric_options``: any was given) and unknown ones."""
    from pyromim.data.text import load_text  # text builds on this module's errors

    if numeric_options:
        raise DataFileError(f"{path}: a text file takes no binarize, flatten, key or label_column option")
    unknown = sorted(set(text_options) - set(TEXT_OPTIONS))
    if unknown:
        raise DataFileError(f"{path}: unknown options {unknown} for a text file; it takes {list(TEXT_OPTIONS)}")
    text = load_text(path, max_decompressed_bytes=limit, **text_options)
    if labels is None:
        return text
    text_labels = _label_file(labels, len(text), limit)
    return ArrayDataset(text.x, "tokens", text_labels, text.name, vocabulary=text.vocabulary, _checked=False)


def _label_file(labels: str | Path, n_items: int, limit: int | None) -> torch.Tensor:
    """The labels of a separate label file, one per item (a single row or column read as a vector)."""
    label_values, _ = read_array(labels, max_decompressed_bytes=limit)
    flat = label_values.reshape(-1) if label_values.ndim == 2 and 1 in label_values.shape else label_values
    return _as_labels(flat, n_items, str(labels))


def _binarized(path: Path, values: np.ndarray, binarize: float) -> np.ndarray:
    """``values > binarize`` as 0/1 floats; a threshold that is not a finite number is refused."""
    if isinstance(binarize, bool) or not isinstance(binarize, (int, float)) or not math.isfinite(binarize):
        raise DataFileError(
            f"{path}: the binarisation threshold must be a finite number (--binarize T, binarize=T), got {binarize!r}"
        )
    return (values > binarize).astype(np.float32)


def _checked_kind(path: Path, x: torch.Tensor, kind: str | None) -> str:
    """The kind of the values ``x`` of the file ``path``: ``kind`` if they fit it, else inferred from them;
    non-finite values, or values outside a declared kind's support, are refused."""
    if not values_fit_kind(x, "continuous"):  # every value finite (checked a chunk at a time)
        raise DataFileError(f"{path}: holds {describe_values(x)}; remove or impute them before training")
    if kind is None:
        return infer_kind(x)
    if kind in KIND_SUPPORT and not values_fit_kind(x, kind):
        raise DataFileError(
            f"{path}: declared kind {kind!r} needs {KIND_SUPPORT[kind]} but the file holds {describe_values(x)}"
        )
    return kind
