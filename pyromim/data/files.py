"""Loading user data files: ``.npy``, ``.npz``, ``.csv`` and MNIST-format IDX files.

Formats (chosen by the file name; IDX files are also recognised by their magic
number, and ``.gz`` compression is read transparently for IDX and CSV):

* ``.npy``: one array of shape ``(N, ...)``.
* ``.npz``: the array under ``key`` (default: ``"x"``, else the only array in
  the file); labels under ``"y"`` or ``"labels"`` when present.
* ``.csv``: numeric table, one item per row; a first row that does not parse as
  numbers is a header.  ``label_column`` (a header name or column index) moves
  one column into the labels.
* IDX (``*-ubyte``, ``*.idx``, ``*.idx3-ubyte`` ... optionally ``.gz``): the
  MNIST format, a 4-byte magic number ``0x00 0x00 type ndim``, then ``ndim``
  big-endian int32 sizes, then the values big-endian.  Unsigned-byte images are
  scaled by 1/255 to grey levels in [0, 1] (``scale_bytes=False`` keeps 0..255).

Labels may also come from a separate file (``labels=PATH``, any of the formats
above holding one integer per item).  The data kind is inferred from the values
(see :func:`pyromim.data.dataset.infer_kind`) unless given; ``binarize=t`` maps
values ``> t`` to 1 and the rest to 0.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch

from pyromim.data.dataset import KIND_SUPPORT, ArrayDataset, describe_values, infer_kind, values_fit_kind

SUPPORTED_FORMATS = ".npy, .npz, .csv (optionally .gz), MNIST IDX files (optionally .gz)"

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


def _open(path: Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if path.suffix == ".gz" else open(path, "rb")


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


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX (MNIST-format) file, gzipped or not, into a native-endian array."""
    path = Path(path)
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataFileError(
            f"{path}: not an IDX file (the first bytes must be 0x00 0x00 <type> <ndim> with type one of "
            f"{sorted(hex(t) for t in _IDX_DTYPES)}; got {raw[:4]!r})"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: IDX header declares {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(
            f"{path}: IDX header declares shape {shape} of {dtype.name} ({expected} bytes of values) "
            f"but the file holds {len(raw) - header} bytes after the header; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _read_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    with _open(path) as f:
        rows = list(csv.reader(io.TextIOWrapper(f, encoding="utf-8")))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if not rows:
        raise DataFileError(f"{path}: the CSV file holds no rows")
    header: list[str] | None = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataFileError(f"{path}: CSV rows have different numbers of columns {sorted(widths)}")
    try:
        table = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise DataFileError(f"{path}: CSV holds a value that is not a number ({err})") from err
    if label_column is None:
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


def _read_npz(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None:
            candidates = [k for k in names if k not in ("y", "labels")]
            key = "x" if "x" in names else (candidates[0] if len(candidates) == 1 else None)
            if key is None:
                raise DataFileError(f"{path}: which array holds the data? pass key=, one of {names}")
        if key not in names:
            raise DataFileError(f"{path}: no array {key!r}; the file holds {names}")
        labels_key = next((k for k in ("y", "labels") if k in names and k != key), None)
        return archive[key], (archive[labels_key] if labels_key else None)


def read_array(
    path: str | Path, *, key: str | None = None, label_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(values, labels or None)`` from any supported file, without interpretation."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such data file")
    suffix = _stem_suffix(path)
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            return _read_npz(path, key)
        if suffix in (".csv", ".txt"):
            return _read_csv(path, label_column)
        if _looks_like_idx(path):
            return read_idx(path), None
    except (OSError, ValueError, EOFError) as err:
        if isinstance(err, DataFileError):
            raise
        raise DataFileError(f"{path}: could not read the file ({err})") from err
    raise DataFileError(f"{path}: unknown data file format; supported formats: {SUPPORTED_FORMATS}")


def _as_labels(values: np.ndarray, n: int, source: str) -> torch.Tensor:
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != n:
        raise DataFileError(
            f"{source}: labels of shape {values.shape} do not match {n} data items; "
            f"a label file must hold one integer per item"
        )
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise DataFileError(f"{source}: labels must be integers, got non-integer values")
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
) -> ArrayDataset:
    """Load a data file (and optionally a separate label file) into an :class:`ArrayDataset`.

    :param kind: declare the kind instead of inferring it; the values must fit it.
    :param binarize: threshold ``t``: values ``> t`` become 1, others 0 (kind ``binary``).
    :param scale_bytes: scale unsigned-byte IDX images by 1/255 to grey levels.
    :param flatten: flatten each item to a vector.
    """
    path = Path(path)
    values, file_labels = read_array(path, key=key, label_column=label_column)
    if values.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: holds {values.dtype} values; numeric data are needed")
    if values.ndim == 0 or values.shape[0] == 0:
        raise DataFileError(f"{path}: holds no items (shape {values.shape})")
    if values.ndim == 1:
        values = values[:, None]
    if scale_bytes and values.dtype == np.uint8 and _stem_suffix(path) not in (".npy", ".npz", ".csv"):
        values = values.astype(np.float32) / 255.0
    if binarize is not None:
        values = (values > binarize).astype(np.float32)
        kind = kind or "binary"
    x = torch.as_tensor(np.ascontiguousarray(values))
    if not torch.isfinite(x.to(torch.float64)).all():
        raise DataFileError(f"{path}: holds {describe_values(x)}; remove or impute them before training")
    if kind is None:
        kind = infer_kind(x)
    elif kind in KIND_SUPPORT and not values_fit_kind(x, kind):
        raise DataFileError(
            f"{path}: declared kind {kind!r} needs {KIND_SUPPORT[kind]} but the file holds {describe_values(x)}"
        )
    x = x.to(torch.long) if kind == "tokens" else x.to(torch.float32)
    label_tensor = None
    if labels is not None:
        label_values, _ = read_array(labels)
        label_tensor = _as_labels(
            label_values.reshape(-1) if label_values.ndim == 2 and 1 in label_values.shape else label_values,
            x.shape[0],
            str(labels),
        )
    elif file_labels is not None:
        label_tensor = _as_labels(file_labels, x.shape[0], str(path))
    data = ArrayDataset(x, kind, label_tensor, str(path))
    return data.flatten() if flatten else data
