"""A spec made from a data file, for training on a file without writing a spec first.

``pyromim train FILE --likelihood NAME`` reads the file once to learn its item
shape and data kind (:func:`pyromim.data.dataset.infer_kind`; text files are
tokens), checks the likelihood against that kind and builds a spec with every
other key at its default.  The run writes the spec into its directory as
``spec.toml``, where it can be edited and trained again
(``pyromim train RUN/spec.toml --data FILE``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyromim.blocks.likelihoods import LIKELIHOODS
from pyromim.data.dataset import KIND_SUPPORT, ArrayDataset
from pyromim.specs.schema import ArchitectureSpec, DataSpec, ModelSpec, NetworkSpec, likelihoods_for_kind
from pyromim.specs.validation import SpecError, nearest

#: The latent size of a spec made from a file, unless given (smaller for items of fewer values).
DEFAULT_LATENT_DIM = 8
#: The hidden width of the encoder and decoder of a spec made from a file.
HIDDEN_WIDTH = 128

#: How the caller names the choices in messages: the Python parameters by default; the command line
#: passes its flags (``{"likelihood": "--likelihood", "latent_dim": "--latent-dim"}``).
PYTHON_NAMES = {"likelihood": "likelihood", "latent_dim": "latent_dim"}


def _given(name: str, value: object) -> str:
    """``--option value`` for a flag, ``name=value`` for a Python parameter."""
    return f"{name} {value}" if name.startswith("-") else f"{name}={value!r}"


_DATA_NAME = re.compile(r"\.(npy|npz|csv|txt|idx[0-9]?(-ubyte)?)$|-ubyte$|\.idx[0-9]?$", re.IGNORECASE)


def looks_like_data_file(name: str | Path) -> bool:
    """Whether ``name`` is named like a data file :func:`pyromim.data.load_file` reads
    (``.npy``, ``.npz``, ``.csv``, ``.txt``, MNIST IDX; each optionally ``.gz``), not like a spec."""
    text = str(name)
    return bool(_DATA_NAME.search(text.removesuffix(".gz").removesuffix(".GZ")))


@dataclass
class DataFileSpec:
    """A spec made from a data file, and what was learnt from the file.

    :ivar spec: the spec (validated).
    :ivar data: the file's items as loaded (not split).
    :ivar fitting: the likelihoods that fit the file's data kind, the exact fit first.
    """

    spec: ModelSpec
    data: ArrayDataset
    fitting: list[str]

    def summary(self) -> str:
        """One line: the file, its items, their kind and the likelihood chosen."""
        kind = self.spec.data.kind
        values = f"{len(self.data.vocabulary)} distinct tokens" if self.data.vocabulary else KIND_SUPPORT[kind]
        return (
            f"{self.data.name}: {len(self.data)} items of shape {self.spec.data.shape}, {kind} data ({values}); "
            f"likelihood {self.spec.model.likelihood}, latent size {self.spec.model.latent_dim}"
        )


def spec_name_for(path: str | Path) -> str:
    """A plain spec name (and run folder) for a data file: its name without the format suffixes."""
    name = Path(path).name
    for suffix in (".gz", ".npy", ".npz", ".csv", ".txt"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"
    return name


def _likelihoods_for(data: ArrayDataset) -> list[str]:
    """The likelihoods that fit the data's kind (and item shape: the PixelCNN takes [H, W] images alone);
    integer data (counts) may also be read as token ids."""
    fitting = likelihoods_for_kind(data.kind) + (likelihoods_for_kind("tokens") if data.kind == "counts" else [])
    return [name for name in fitting if name != "pixelcnn" or len(data.event_shape) == 2]


def _default_likelihood(data: ArrayDataset, fitting: list[str], names: Mapping[str, str]) -> str:
    """The one likelihood that plainly fits the data (the exact, non-autoregressive fit), else a refusal."""
    exact = [
        name
        for name in fitting
        if LIKELIHOODS[name].support_kind == data.kind and not getattr(LIKELIHOODS[name], "owns_decoder", False)
    ]
    if data.kind == "grey" and exact == ["discretized_logistic"]:
        # grey levels off the 8-bit grid (values in [0, 1] of a table, say) are continuous data for the model
        on_grid = LIKELIHOODS["discretized_logistic"](tuple(data.event_shape)).in_support(data.x)
        exact = exact if on_grid else ["gaussian"]
    if len(exact) == 1:
        return exact[0]
    raise SpecError(
        f"{data.name}: {data.kind} data ({KIND_SUPPORT[data.kind]}) fit several likelihoods; choose one with "
        f"{names['likelihood']} among: {', '.join(fitting)}"
    )


def spec_for_data_file(
    path: str | Path,
    *,
    likelihood: str | None = None,
    latent_dim: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    names: Mapping[str, str] = PYTHON_NAMES,
) -> DataFileSpec:
    """A spec for training on the data file ``path``, with every key but the data's at its default.

    :param likelihood: the likelihood; default: the one that plainly fits the data's kind (binary:
        ``bernoulli``, grey levels: ``discretized_logistic``, continuous: ``gaussian``, tokens:
        ``categorical``); counts fit two, so one must be chosen.
    :param latent_dim: the latent size (default 8, or the item size if smaller).
    :param data_options: the file's options (``binarize``, ``labels``, ``label_column``, the text
        options; see :func:`pyromim.data.load_file`); ``val_fraction``/``test_fraction`` go into the spec.
    :param names: how the caller names ``likelihood`` and ``latent_dim`` in messages.
    :raises SpecError: a likelihood that does not fit the data's kind, naming those that do.
    :raises pyromim.data.DataFileError: a file that cannot be read.
    """
    from pyromim.data.files import load_file

    options = dict(data_options or {})
    fractions = {key: options.pop(key) for key in ("val_fraction", "test_fraction") if key in options}
    options.pop("truncate", None)  # the spec's width fits the longest sentence: nothing to cut
    data = load_file(path, **options)
    fitting = _likelihoods_for(data)
    if likelihood is None:
        likelihood = _default_likelihood(data, fitting, names)
    elif likelihood not in fitting:
        known = f" (not a likelihood{nearest(likelihood, list(LIKELIHOODS))})" if likelihood not in LIKELIHOODS else ""
        raise SpecError(
            f"{_given(names['likelihood'], likelihood)}{known} does not fit {data.name}, which holds "
            f"{data.kind} data ({KIND_SUPPORT[data.kind]}) in items of shape {list(data.event_shape)}; "
            f"choose one of: {', '.join(fitting)}"
        )
    if latent_dim is not None and latent_dim < 1:
        raise SpecError(f"{_given(names['latent_dim'], latent_dim)}: the latent size must be at least 1")
    tokens = LIKELIHOODS[likelihood].support_kind == "tokens"
    shape = list(data.event_shape)
    vocab_size = None
    if tokens:
        vocab_size = len(data.vocabulary) if data.vocabulary is not None else max(int(data.x.max()) + 1, 2)
    network = NetworkSpec(hidden=[HIDDEN_WIDTH])
    spec = ModelSpec(
        name=spec_name_for(path),
        description=f"Made from the data file {path} ({data.kind} data); train it on that file (--data).",
        data=DataSpec(kind="tokens" if tokens else data.kind, shape=shape, vocab_size=vocab_size, **fractions),
        model=ArchitectureSpec(
            latent_dim=latent_dim or min(DEFAULT_LATENT_DIM, math.prod(shape)), likelihood=likelihood
        ),
        encoder=network,
        decoder=NetworkSpec(hidden=[HIDDEN_WIDTH]),
    )
    return DataFileSpec(spec.validate(f"the spec made from {data.name}"), data, fitting)


__all__ = ["DataFileSpec", "looks_like_data_file", "spec_for_data_file", "spec_name_for"]
