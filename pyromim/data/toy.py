"""The toy Gaussian-mixture data sets of the MIM paper: ``toy4`` and ``toy4_20``.

Both are mixtures of five equally weighted Gaussian components with standard
deviation 0.25 in every dimension.  The component means (as in the authors'
reference code):

* dims 0-1: component 0 at the origin, components ``i + 1`` for ``i = 0..3``
  on the unit circle at angle ``2*pi*i/5``, i.e. ``(cos(2 pi i/5), sin(2 pi i/5))``;
* dims 2..D-1 (only ``toy4_20``, ``D = 20``): taken from
  ``linspace(-50, 50, 5 * D)`` laid out row-major as a ``5 x D`` matrix, whose
  dims 0-1 are then overwritten by the 2-D layout above.

Train, validation and test sets are independent fresh draws from the mixture
(10,000 points each by default); each point's label is its component index.
"""

from __future__ import annotations

import numpy as np
import torch

from pyromim.data.dataset import ArrayDataset, DataSplits

NUM_COMPONENTS = 5
COMPONENT_STD = 0.25


def toy4_means(dim: int = 2) -> np.ndarray:
    """The ``(5, dim)`` matrix of component means (float64), see the module docstring."""
    if dim < 2:
        raise ValueError(f"toy4 mixtures need at least 2 dimensions, got dim={dim}")
    means = np.linspace(-50.0, 50.0, NUM_COMPONENTS * dim).reshape(NUM_COMPONENTS, dim)
    angles = 2.0 * np.pi * np.arange(NUM_COMPONENTS - 1) / NUM_COMPONENTS
    means[0, :2] = 0.0
    means[1:, 0] = np.cos(angles)
    means[1:, 1] = np.sin(angles)
    return means


def sample_toy4(n: int, dim: int, rng: np.random.Generator, name: str) -> ArrayDataset:
    """``n`` points of the ``dim``-dimensional mixture, labelled by component."""
    labels = rng.integers(0, NUM_COMPONENTS, size=n)
    x = toy4_means(dim)[labels] + COMPONENT_STD * rng.standard_normal((n, dim))
    return ArrayDataset(
        torch.as_tensor(x, dtype=torch.float32),
        "continuous",
        torch.as_tensor(labels, dtype=torch.long),
        name,
    )


def _toy_splits(name: str, dim: int, n_train: int, n_val: int, n_test: int, seed: int) -> DataSplits:
    # independent streams for the three parts, so changing n_val leaves train unchanged
    train_rng, val_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return DataSplits(
        train=sample_toy4(n_train, dim, train_rng, f"{name} (train)"),
        val=sample_toy4(n_val, dim, val_rng, f"{name} (val)") if n_val > 0 else None,
        test=sample_toy4(n_test, dim, test_rng, f"{name} (test)") if n_test > 0 else None,
    )


def toy4(*, n_train: int = 10_000, n_val: int = 10_000, n_test: int = 10_000, seed: int = 0) -> DataSplits:
    """The 2-D five-component mixture: fresh train, validation and test draws from ``seed``."""
    return _toy_splits("toy4", 2, n_train, n_val, n_test, seed)


def toy4_20(*, n_train: int = 10_000, n_val: int = 10_000, n_test: int = 10_000, seed: int = 0) -> DataSplits:
    """The 20-D version of :func:`toy4` (dims 2-19 of the means far apart, see module docstring)."""
    return _toy_splits("toy4_20", 20, n_train, n_val, n_test, seed)
