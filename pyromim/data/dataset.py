"""The dataset object shared by every loader: an array of items plus what they are.

A model's likelihood has a *support* (the values it can score) and an input
shape.  :class:`ArrayDataset` records both facts about the data so that
:func:`pyromim.data.check_data_fits` can reject a mismatch before training.

Kinds of data (``DataKind``) and the values they hold:

* ``"binary"``: every value in {0, 1} (Bernoulli pixels, binarised images);
* ``"grey"``: grey levels, every value in [0, 1] (scaled pixel intensities);
* ``"continuous"``: any finite real values (Gaussian likelihoods);
* ``"counts"``: non-negative integers (Poisson, binomial likelihoods);
* ``"tokens"``: non-negative integer category ids (categorical likelihoods);
  never inferred, only declared, since ids look exactly like counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import torch

if TYPE_CHECKING:
    from pyromim.data.text import Vocabulary

#: A kind of data: binary ({0, 1}), grey ([0, 1]), continuous (real), counts (integers >= 0) or tokens (category ids).
DataKind = Literal["binary", "grey", "continuous", "counts", "tokens"]
#: The data kinds a spec's ``[data] kind`` may name (the values of :data:`DataKind`).
DATA_KINDS: tuple[str, ...] = get_args(DataKind)

#: Human description of the values each kind holds, used in error messages.
KIND_SUPPORT: dict[str, str] = {
    "binary": "values in {0, 1}",
    "grey": "grey levels in [0, 1]",
    "continuous": "finite real values",
    "counts": "non-negative integers",
    "tokens": "non-negative integer token ids",
}


#: Values checked at a time by :func:`values_fit_kind`, so that its temporaries stay small.
CHECK_CHUNK = 2**21


def values_fit_kind(values: torch.Tensor | np.ndarray, kind: str) -> bool:
    """Whether every value lies in the support of ``kind`` (all must be finite).

    The values are checked :data:`CHECK_CHUNK` at a time: the temporaries take
    a few megabytes, not several copies of the data.
    """
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown data kind {kind!r}; choose one of {DATA_KINDS}")
    flat = torch.as_tensor(values).reshape(-1)
    return all(_chunk_fits(flat[i : i + CHECK_CHUNK], kind) for i in range(0, flat.numel(), CHECK_CHUNK))


def _chunk_fits(v: torch.Tensor, kind: str) -> bool:
    if not v.is_floating_point():
        v = v.to(torch.float64)
    if not bool(torch.isfinite(v).all()):
        return False
    if kind == "continuous":
        return True
    if kind == "binary":
        return bool(((v == 0) | (v == 1)).all())
    if kind == "grey":
        return bool(((v >= 0) & (v <= 1)).all())
    return bool(((v >= 0) & (v == torch.round(v))).all())  # counts, tokens


def infer_kind(values: torch.Tensor | np.ndarray) -> str:
    """The narrowest kind whose support holds every value.

    Order of preference: binary, then counts for integer values, grey for
    values in [0, 1], else continuous.  ``"tokens"`` is never inferred.
    """
    for kind in ("binary", "counts", "grey", "continuous"):
        if values_fit_kind(values, kind):
            return kind
    raise ValueError("data hold NaN or infinite values; no data kind fits them")


def describe_values(values: torch.Tensor) -> str:
    """A short description of the observed value range, e.g. ``'values 0..255 (integers)'``."""
    v = values.detach().to(torch.float64)
    if v.numel() == 0:
        return "no values"
    finite = torch.isfinite(v)
    if not bool(finite.all()):
        return f"{int((~finite).sum())} non-finite values (NaN or inf)"
    lo, hi = float(v.min()), float(v.max())
    integral = bool((v == torch.round(v)).all())
    if integral:
        return f"values {lo:g}..{hi:g} (integers)"
    return f"values in [{lo:.4g}, {hi:.4g}]"


@dataclass(frozen=True, eq=False)
class ArrayDataset(torch.utils.data.Dataset):
    """A set of ``N`` items of shape ``event_shape`` with optional labels.

    :param x: tensor of shape ``(N, *event_shape)``; float32 unless the kind is
        ``"tokens"`` or ``"counts"`` declared as integers.
    :param kind: what the values are (see the module docstring).
    :param labels: optional integer tensor of shape ``(N,)`` (class or mixture
        component of each item), used by evaluation, never by training.
    :param name: where the data came from (a file path or a built-in name); it is
        quoted in every error message about the data.
    :param vocabulary: for ``"tokens"`` data read from text, the
        :class:`pyromim.data.Vocabulary` mapping the ids to tokens (kept by
        :meth:`subset` and :meth:`flatten`, so splits carry it too).

    Indexing returns the item tensor only, so a ``DataLoader`` over the dataset
    yields batches ``x`` of shape ``(B, *event_shape)`` ready for ``model(x)``.
    """

    x: torch.Tensor
    kind: str
    labels: torch.Tensor | None = None
    name: str = "data"
    vocabulary: Vocabulary | None = None
    _checked: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ValueError(f"data {self.name!r}: unknown kind {self.kind!r}; choose one of {DATA_KINDS}")
        if self.x.dim() < 1:
            raise ValueError(f"data {self.name!r}: expected an array of items, got a scalar")
        if self.labels is not None and self.labels.shape != (self.x.shape[0],):
            raise ValueError(
                f"data {self.name!r}: {self.x.shape[0]} items but labels of shape "
                f"{tuple(self.labels.shape)}; labels must hold one integer per item"
            )
        if self._checked and not values_fit_kind(self.x, self.kind):
            raise ValueError(
                f"data {self.name!r} declared {self.kind!r} ({KIND_SUPPORT[self.kind]}) "
                f"but holds {describe_values(self.x)}"
            )
        if self.vocabulary is not None:
            if self.kind != "tokens":
                raise ValueError(f"data {self.name!r}: a vocabulary goes with 'tokens' data, not {self.kind!r}")
            if self._checked and self.x.numel() and int(self.x.max()) >= len(self.vocabulary):
                raise ValueError(
                    f"data {self.name!r} hold token id {int(self.x.max())} but the vocabulary has only "
                    f"{len(self.vocabulary)} tokens (ids 0..{len(self.vocabulary) - 1})"
                )

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one item, e.g. ``(2,)`` for toy4 or ``(28, 28)`` for MNIST images."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.x[index]

    def subset(self, indices: torch.Tensor | np.ndarray | list[int], name: str | None = None) -> ArrayDataset:
        """The items at ``indices`` (values and kind unchanged, so no re-check)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        labels = None if self.labels is None else self.labels[idx]
        return ArrayDataset(
            self.x[idx], self.kind, labels, name or self.name, vocabulary=self.vocabulary, _checked=False
        )

    def flatten(self) -> ArrayDataset:
        """The same items flattened to vectors of ``prod(event_shape)`` values."""
        return ArrayDataset(
            self.x.reshape(len(self), -1), self.kind, self.labels, self.name, vocabulary=self.vocabulary, _checked=False
        )


@dataclass(frozen=True)
class DataSplits:
    """Train, validation and test parts of one data source (validation/test may be absent)."""

    train: ArrayDataset
    val: ArrayDataset | None = None
    test: ArrayDataset | None = None

    def parts(self) -> dict[str, ArrayDataset]:
        """The parts that are present, by name."""
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {k: v for k, v in named.items() if v is not None}
