"""The data a run trains on: the spec's built-in set or a user file, capped and checked against the model.

Checks happen before any training, so a mismatch costs nothing:

* item shape: data whose items have as many values as the model's input
  (e.g. ``(N, 28, 28)`` images for a model of shape ``[1, 28, 28]``, or
  ``(N, 8, 8)`` for ``[64]``) are reshaped and the reshape is logged; any
  other shape is rejected;
* values: they must lie in the support of the model's likelihood (Bernoulli:
  {0, 1}; Gaussian: finite reals; discretised logistic: grey levels in [0, 1];
  Poisson / negative binomial: non-negative integers; categorical: token ids
  below the vocabulary size).

Both failures raise :class:`pyromim.data.DataMismatchError` naming the spec,
its likelihood and input shape, the data source and what the data hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyromim.blocks.likelihoods import LIKELIHOODS, DataSupportError
from pyromim.data import ArrayDataset, DataMismatchError, DataSplits, check_data_fits, load_data
from pyromim.data.registry import BUILTIN_DATASETS
from pyromim.specs import ModelSpec

logger = logging.getLogger(__name__)


def _cap(part: ArrayDataset | None, n: int | None) -> ArrayDataset | None:
    if part is None or n is None or n >= len(part):
        return part
    if n < 1:
        return None
    return part.subset(list(range(n)))


def _fit_shape(part: ArrayDataset | None, shape: tuple[int, ...]) -> ArrayDataset | None:
    if part is None or part.event_shape == shape or math.prod(part.event_shape) != math.prod(shape):
        return part
    x = part.x.reshape((len(part),) + shape)
    return ArrayDataset(x, part.kind, part.labels, part.name, vocabulary=part.vocabulary, _checked=False)


def check_spec_data(spec: ModelSpec, data: ArrayDataset, likelihood: Any = None) -> None:
    """Raise :class:`DataMismatchError` unless ``data`` fit ``spec``'s input shape and likelihood.

    :param likelihood: the built model's likelihood module; when given, its own
        support check runs too (it knows e.g. the vocabulary size or grey-level grid).
    """
    shape, name = tuple(spec.data.shape), spec.model.likelihood
    where = f"spec '{spec.name}' ({name} likelihood over items of shape {list(shape)})"
    size = spec.data.vocab_size
    if data.vocabulary is not None and size is not None and len(data.vocabulary) != size:
        raise DataMismatchError(
            f"{where}: data {data.name!r} come with a vocabulary of {len(data.vocabulary)} tokens but the spec's "
            f"[data] vocab_size is {size}; set vocab_size = {len(data.vocabulary)}, or read the text with the "
            f"vocabulary saved with the model's run"
        )
    try:
        check_data_fits(data, event_shape=shape, kind=LIKELIHOODS[name].support_kind)
        if likelihood is not None:
            likelihood.check_support(data.x)
    except DataMismatchError as err:
        raise DataMismatchError(f"{where}: {err}") from None
    except DataSupportError as err:
        raise DataMismatchError(f"{where}: data {data.name!r}: {err}") from None


def prepare_data(
    spec: ModelSpec,
    data: str | Path | DataSplits | None = None,
    *,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    likelihood: Any = None,
) -> DataSplits:
    """Load, cap, reshape and check the data for ``spec``.

    :param data: a built-in name (``toy4``, ``toy4_20``, ``digits``,
        ``digits_continuous``, ``sentences``), a file path (see :func:`pyromim.data.load_file`),
        ready :class:`DataSplits`, or ``None`` for the spec's ``[data] dataset``.
    :param seed: split seed (built-in toy sets: seed of the fresh draws).
    :param n_train: keep at most this many training items (``0`` drops the part); for quick runs.
    :param n_val: the same for the validation part.
    :param n_test: the same for the test part.
    :param data_options: passed to :func:`pyromim.data.load_data` for files
        (``labels``, ``binarize``, ``kind``, ``key``, ``label_column``, ``val_fraction``,
        ``test_fraction`` ...); a file's split fractions default to the spec's
        ``[data] val_fraction`` / ``test_fraction`` (else 0.1 each).  A
        text file for a spec of flat token vectors of width ``W`` is read with
        ``max_length = W - 1`` unless the options say otherwise, so every
        sentence is padded to the model's width (and a longer one is refused).
    :raises DataMismatchError: no data given and the spec names no built-in data set, or no
        training items are left after the caps.
    """
    if data is None:
        if spec.data.dataset is None:
            raise DataMismatchError(
                f"spec '{spec.name}' names no built-in data set ([data] dataset); give a data file with --data PATH "
                f"(data= from Python; .npy, .npz, .csv, .txt, IDX) holding items of shape {list(spec.data.shape)}"
            )
        data = spec.data.dataset
    options = dict(data_options or {})
    if not isinstance(data, DataSplits) and str(data) in BUILTIN_DATASETS and options:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in sorted(options))
        raise DataMismatchError(
            f"data options {sorted(options)} ({flags}) apply to data files, not to the built-in data set "
            f"{str(data)!r}, which has its own split and values; leave them out or give a file with --data PATH"
        )
    if not isinstance(data, DataSplits) and str(data) not in BUILTIN_DATASETS:
        # the spec's split of a data file; the data options (--val-fraction, --test-fraction) override it
        for key in ("val_fraction", "test_fraction"):
            if getattr(spec.data, key) is not None:
                options.setdefault(key, getattr(spec.data, key))
    is_text = isinstance(data, (str, Path)) and str(data).endswith((".txt", ".txt.gz"))
    if is_text and spec.data.kind == "tokens" and len(spec.data.shape) == 1 and "max_length" not in options:
        options["max_length"] = spec.data.shape[0] - 1  # room for <eos> in the model's width
    splits = data if isinstance(data, DataSplits) else load_data(data, seed=seed, **options)
    shape = tuple(spec.data.shape)
    parts: dict[str, ArrayDataset | None] = {}
    for key, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        capped = _cap(getattr(splits, key), n)
        parts[key] = _fit_shape(capped, shape)
        if capped is not None and parts[key] is not capped:
            logger.info(
                "data %r: items of shape %s reshaped to the model's input shape %s",
                capped.name,
                capped.event_shape,
                shape,
            )
    train = parts["train"]
    if train is None or len(train) == 0:
        raise DataMismatchError(
            f"data {splits.train.name!r}: no training items left (--n-train {n_train}, n_train= from Python); "
            "give a larger cap or leave it out"
        )
    for part in parts.values():
        if part is not None:
            check_spec_data(spec, part, likelihood)
    return DataSplits(train, parts["val"], parts["test"])
