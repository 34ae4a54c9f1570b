"""Deterministic train/validation/test splits of one dataset from a seed."""

from __future__ import annotations

import math

import numpy as np

from pyromim.data.dataset import ArrayDataset, DataSplits

#: The share of a data file's items kept for validation, and for testing, unless set otherwise.
DEFAULT_FRACTION = 0.1


def items_for_part(n_part: int, fraction: float = DEFAULT_FRACTION) -> int:
    """The fewest items whose split (:func:`split_dataset`) keeps at least ``n_part`` in a part of ``fraction``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    n = max(1, math.floor((n_part - 0.5) / fraction) - 1)
    while int(round(fraction * n)) < n_part:
        n += 1
    return n


def split_dataset(
    data: ArrayDataset,
    *,
    val_fraction: float = DEFAULT_FRACTION,
    test_fraction: float = DEFAULT_FRACTION,
    seed: int = 0,
) -> DataSplits:
    """Shuffle the items with ``numpy.random.default_rng(seed)`` and cut them in three.

    The test part takes the first ``round(test_fraction * N)`` shuffled items, the
    validation part the next ``round(val_fraction * N)``, training the rest; the
    same ``seed`` always gives the same split.  A fraction of 0 leaves that part out.
    """
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{key} must lie in [0, 1), got {value}")
    n = len(data)
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    if n - n_test - n_val < 1:
        raise ValueError(
            f"data {data.name!r} has {n} items: too few for val_fraction={val_fraction} "
            f"and test_fraction={test_fraction} to leave any training items"
        )
    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return DataSplits(
        train=data.subset(train_idx, f"{data.name} (train)"),
        val=data.subset(val_idx, f"{data.name} (val)") if n_val else None,
        test=data.subset(test_idx, f"{data.name} (test)") if n_test else None,
    )
