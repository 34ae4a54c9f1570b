"""One entry point for data by name or path: built-in sets or user files, split from a seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyromim.data.dataset import DataSplits
from pyromim.data.digits import digits
from pyromim.data.files import load_file
from pyromim.data.sentences import synthetic_sentences
from pyromim.data.splits import split_dataset
from pyromim.data.toy import toy4, toy4_20

#: Built-in data sets by name; each takes ``seed=`` and returns :class:`DataSplits`.
BUILTIN_DATASETS: dict[str, Callable[..., DataSplits]] = {
    "toy4": toy4,
    "toy4_20": toy4_20,
    "digits": lambda **kw: digits("binary", **kw),
    "digits_binary": lambda **kw: digits("binary", **kw),
    "digits_continuous": lambda **kw: digits("continuous", **kw),
    "sentences": synthetic_sentences,
}


def load_data(
    source: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    **file_options: Any,
) -> DataSplits:
    """Data by built-in name (see :data:`BUILTIN_DATASETS`) or file path, split from ``seed``.

    Built-in sets come with their own splits (toy sets and ``sentences``: fresh
    draws per part; ``val_fraction``/``test_fraction`` are ignored).  A file is loaded with
    :func:`pyromim.data.load_file` (``file_options`` are passed on: ``labels``,
    ``kind``, ``key``, ``label_column``, ``binarize``, ``flatten``; for ``.txt``
    text ``vocabulary``, ``min_count``, ``lowercase``, ``max_length``,
    ``truncate`` ...) and split
    with :func:`pyromim.data.split_dataset`.
    """
    name = str(source)
    if name in BUILTIN_DATASETS:
        if file_options:
            raise TypeError(f"options {sorted(file_options)} apply to data files, not to built-in {name!r}")
        return BUILTIN_DATASETS[name](seed=seed)
    if not Path(name).exists():
        raise FileNotFoundError(
            f"data {name!r} is neither a built-in data set ({', '.join(BUILTIN_DATASETS)}) nor an existing file"
        )
    data = load_file(name, **file_options)
    return split_dataset(data, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
