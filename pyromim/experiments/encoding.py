"""``encode_run``: the latent codes of a trained run's model for a data set, and ``write_codes`` to save them.

The code of an item ``x`` is the encoder's posterior mean ``E_q[z | x]``
(:meth:`~pyromim.models.LatentVariableModel.encode`); ``samples=K`` adds ``K``
draws ``z ~ q(z | x)`` per item.  A data file is encoded whole, item by item
in file order; a built-in data set (or the run's own data) is split as the run
split it and one part is encoded.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from pyromim._atomic import atomic_write
from pyromim.data import DataMismatchError, load_file
from pyromim.experiments.datasets import _fit_shape, check_spec_data, prepare_data
from pyromim.experiments.evaluation import load_run_model
from pyromim.experiments.runner import own_param_store

logger = logging.getLogger(__name__)

#: File formats :func:`write_codes` writes, by suffix.
CODE_FORMATS = (".npy", ".npz", ".csv")

#: Data parts a built-in data set may be encoded from.
PARTS = ("train", "val", "test")


@dataclass
class Codes:
    """Latent codes of ``N`` items.

    :ivar means: ``(N, D)`` posterior means (latent dimensions flattened).
    :ivar samples: ``(N, K, D)`` posterior draws, or ``None``.
    :ivar labels: ``(N,)`` labels of the data, or ``None``.
    :ivar data_name: the data encoded.
    :ivar source: the model file read.
    """

    means: np.ndarray
    samples: np.ndarray | None
    labels: np.ndarray | None
    data_name: str
    source: Path


def _items(model: Any, info: dict[str, Any], data: str | Path | None, options: Any, part: str, seed: int) -> Any:
    spec = model.spec
    if data is not None and Path(data).is_file():  # a file: every item, in file order
        items = _fit_shape(load_file(data, **dict(options or {})), tuple(spec.data.shape))
        assert items is not None  # a loaded file holds items
        check_spec_data(spec, items, model.likelihood)
        return items
    caps: dict[str, Any] = {}
    if data is None and info.get("data") not in (None, "DataSplits"):  # the run's own data, capped as it was
        data, options = info["data"], options or info.get("data_options") or None
        caps = {key: value for key, value in (info.get("caps") or {}).items() if key in (f"n_{part}", "n_train")}
    splits = prepare_data(spec, data, seed=seed, data_options=options, likelihood=model.likelihood, **caps)
    items = getattr(splits, part)
    if items is None:
        raise DataMismatchError(f"the data have no {part!r} part; choose another part ({', '.join(PARTS)})")
    return items


@own_param_store
def encode_run(
    path: str | Path,
    *,
    data: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
    part: str = "test",
    samples: int = 0,
    seed: int | None = None,
    batch_size: int = 1024,
) -> Codes:
    """The latent codes of ``data`` under the model of the run at ``path``.

    :param path: a run directory, its ``model.pt`` or a training checkpoint (see
        :func:`~pyromim.experiments.load_run_model`).
    :param data: a data file (encoded whole, in file order), a built-in name, or
        ``None`` for the run's own data (capped as the run capped it); the last two
        are split as the run split them.
    :param data_options: file options (``labels``, ``binarize``, ``label_column`` ...).
    :param part: the part of a split data set to encode: ``"train"``, ``"val"`` or ``"test"``.
    :param samples: draws ``z ~ q(z | x)`` per item besides the mean (``0``: none).
    :param seed: seeds the split and the draws (default: the run's seed).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ValueError(f"samples must be an int >= 0, got {samples!r}")
    model, source, info = load_run_model(path)
    seed = int(info.get("seed", 0)) if seed is None else seed
    items = _items(model, info, data, data_options, part, seed)
    model.eval()
    pyro.set_rng_seed(seed)
    means, draws = [], []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            x = items.x[start : start + batch_size]
            means.append(model.encode(x).flatten(1))
            if samples:
                draws.append(torch.stack([model.encode(x, sample=True).flatten(1) for _ in range(samples)], 1))
    logger.info("encoded %d items of %s with %s", len(items), items.name, source)
    return Codes(
        means=torch.cat(means).numpy(),
        samples=torch.cat(draws).numpy() if samples else None,
        labels=None if items.labels is None else items.labels.numpy(),
        data_name=items.name,
        source=source,
    )


def write_codes(codes: Codes, path: str | Path) -> Path:
    """Write ``codes`` to ``path`` (atomically), by its suffix:

    * ``.npy``: the ``(N, D)`` means alone (refused with samples: use ``.npz`` or ``.csv``);
    * ``.npz``: arrays ``means``, and ``samples`` and ``labels`` where present;
    * ``.csv``: a header, then one row per item (``label`` first where present, then
      ``z0 .. z{D-1}``); with samples, one row per item and draw, with columns
      ``item`` and ``draw`` (``mean`` or the draw's index) first.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CODE_FORMATS:
        raise ValueError(f"{path}: codes are written as {', '.join(CODE_FORMATS)}; give a file name ending in one")
    if suffix == ".npy":
        if codes.samples is not None:
            raise ValueError(f"{path}: a .npy file holds one array (the means); write samples to .npz or .csv")
        if codes.labels is not None:
            logger.warning("%s holds the means alone; write .npz or .csv to keep the labels too", path)
        atomic_write(path, lambda f: np.save(f, codes.means), binary=True)
    elif suffix == ".npz":
        arrays: dict[str, Any] = {"means": codes.means}
        arrays.update({k: v for k, v in (("samples", codes.samples), ("labels", codes.labels)) if v is not None})
        atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
    else:
        atomic_write(path, lambda f: _write_csv(f, codes), newline="")
    return path


def _write_csv(f: Any, codes: Codes) -> None:
    writer = csv.writer(f)
    dims = [f"z{j}" for j in range(codes.means.shape[1])]
    labels = codes.labels
    label = ["label"] if labels is not None else []
    if codes.samples is None:
        writer.writerow(label + dims)
        for i, row in enumerate(codes.means):
            writer.writerow(([labels[i].item()] if labels is not None else []) + [repr(float(v)) for v in row])
        return
    writer.writerow(["item", "draw"] + label + dims)
    for i, mean in enumerate(codes.means):
        own = [labels[i].item()] if labels is not None else []
        writer.writerow([i, "mean"] + own + [repr(float(v)) for v in mean])
        for k, draw in enumerate(codes.samples[i]):
            writer.writerow([i, k] + own + [repr(float(v)) for v in draw])


__all__ = ["CODE_FORMATS", "Codes", "encode_run", "write_codes"]
