"""scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, values 0..16).

Two variants:

* ``"binary"``: pixel ``v`` becomes ``1`` when ``v >= 8`` (at least half ink), else ``0``;
  for Bernoulli likelihoods.
* ``"continuous"``: uniform dequantisation ``(v + u) / 17`` with ``u ~ U[0, 1)``
  drawn from the seed, giving values in ``[0, 1]`` whose density is the discrete
  pixel distribution spread evenly over each bin; kind ``"continuous"``, for
  Gaussian (or other real-valued) likelihoods.

Labels are the digit classes 0-9.  Splits are deterministic from the seed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from pyromim.data.dataset import ArrayDataset, DataSplits
from pyromim.data.splits import split_dataset

DIGITS_MAX = 16
BINARY_THRESHOLD = 8


def digits(
    variant: Literal["binary", "continuous"] = "binary",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    flatten: bool = True,
) -> DataSplits:
    """Load, transform and split the digits; items have shape ``(64,)`` or ``(8, 8)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the 'digits' data set needs scikit-learn: pip install 'pyromim[data]'") from err
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if variant == "binary":
        x, kind = (images >= BINARY_THRESHOLD).astype(np.float32), "binary"
    elif variant == "continuous":
        noise = np.random.default_rng(np.random.SeedSequence([seed, 17])).random(images.shape)
        x, kind = ((images + noise) / (DIGITS_MAX + 1)).astype(np.float32), "continuous"
    else:
        raise ValueError(f"digits variant must be 'binary' or 'continuous', got {variant!r}")
    data = ArrayDataset(torch.as_tensor(x), kind, labels, f"digits_{variant}")
    if flatten:
        data = data.flatten()
    return split_dataset(data, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
