"""Property-based tests over spec files and data files: every input ends in a clear
:class:`SpecError` / :class:`DataFileError` (naming its source) or in a working result.

Settings suit a slow shared machine and CI: a bounded number of examples, no
deadline, derandomised (the same examples on every run) and no example database.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyromim.blocks.likelihoods import LIKELIHOODS
from pyromim.blocks.priors import PRIORS
from pyromim.data import ArrayDataset, DataFileError, DataMismatchError, check_data_fits, load_file
from pyromim.data.dataset import DATA_KINDS, values_fit_kind
from pyromim.infer.objectives import OBJECTIVES
from pyromim.models import build_model
from pyromim.models.memory import check_memory
from pyromim.nn.mlp import ACTIVATIONS, NORMS
from pyromim.nn.networks import NETWORKS
from pyromim.specs import ModelSpec, SpecError, resolve_spec
from pyromim.specs.schema import ArchitectureSpec, DataSpec, NetworkSpec, TrainingSpec
from pyromim.specs.toml_io import dumps

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Models built by the fuzz stay small: a spec needing more is expected to be refused.
FUZZ_MEMORY = 32 * 2**20

BASES = ["toy4", "digits_vampprior", "counts_negbin", "mnist_hvae_vampprior", "digits_mixture"]
TABLES = {"data": DataSpec, "model": ArchitectureSpec, "encoder": NetworkSpec, "decoder": NetworkSpec}
TABLES["training"] = TrainingSpec
CHOICES = [
    *PRIORS,
    *LIKELIHOODS,
    *NETWORKS,
    *ACTIVATIONS,
    *NORMS,
    *OBJECTIVES,
    *DATA_KINDS,
    "marginal",
    "learned",
    "data",
    "fixed",
    "per_datum",
    "toy4",
    "digits",
]

sizes = st.one_of(st.integers(-2, 40), st.sampled_from([0, 784, 10**9, 2**63, 10**20]))
toml_values = st.one_of(
    sizes,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(CHOICES),
    st.lists(sizes, max_size=4),
    st.lists(st.integers(1, 64), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
names = st.one_of(
    st.text(max_size=12), st.sampled_from(["../x", "/abs", "a/b", "..", ".", "C:x", "ok_name", "~u", "a\\b"])
)


def _plausible(table: str, key: str):
    """Values of the field's own type (and among its choices), so that many fuzzed specs are valid."""
    field = {f.name: f for f in dataclasses.fields(TABLES[table])}.get(key)
    if field is None:
        return toml_values
    choices = field.metadata.get("choices")
    if choices is not None:
        return st.sampled_from(sorted(choices, key=str))
    hint = typing.get_type_hints(TABLES[table])[key]
    if hint in (int, int | None):
        return st.integers(1, 48)
    if hint in (float, float | None):
        return st.floats(1e-4, 2.0)
    if hint is bool:
        return st.booleans()
    if hint == list[int]:
        return st.lists(st.integers(1, 48), min_size=1, max_size=3)
    return st.text(max_size=8)


@st.composite
def spec_dicts(draw):
    """A catalogue spec as a dict with some keys replaced by arbitrary values, removed or added."""
    data = resolve_spec(draw(st.sampled_from(BASES))).to_dict()
    for _ in range(draw(st.integers(1, 3))):
        roll = draw(st.integers(0, 19))
        if roll == 0:
            data["name"] = draw(st.one_of(names, toml_values))
        elif roll == 1:
            data[draw(st.sampled_from(["description", "extra"]))] = draw(toml_values)
        elif roll == 2:
            data[draw(st.sampled_from(list(TABLES)))] = draw(toml_values)  # a table replaced by a value
        else:
            where = draw(st.sampled_from(list(TABLES)))
            table = dict(data[where]) if isinstance(data.get(where), dict) else {}
            fields = [f.name for f in dataclasses.fields(TABLES[where])]
            key = draw(st.sampled_from(fields)) if roll > 3 else "unknown_key"
            if roll == 4:
                table.pop(key, None)
            else:
                table[key] = draw(toml_values if roll <= 8 else _plausible(where, key))
            data[where] = table
    return data


def _built_or_refused(spec: ModelSpec, where: str) -> None:
    """A valid spec builds, with one draw of its data, unless it is refused for its size naming a key."""
    try:
        check_memory(spec, available=FUZZ_MEMORY, where=where)
    except SpecError as err:
        assert str(err).startswith(f"{where}: '") and "needs at least" in str(err)
        event("refused for its memory")
        return
    event("built")
    model = build_model(spec)
    if spec.data.standardize:  # as training does before the first step
        model.likelihood.set_data_statistics(torch.randn(4, *spec.data.shape))
    x = model.sample(2)
    assert x.shape == (2, *spec.data.shape)
    assert values_fit_kind(x, model.likelihood.support_kind)  # draws lie in the likelihood's support


@FUZZ
@given(spec_dicts())
def test_any_spec_dict_is_refused_clearly_or_builds(data):
    where = "fuzz.toml"
    try:
        spec = ModelSpec.from_dict(data, where=where)
    except SpecError as err:
        assert str(err).startswith(where + ": "), err
        assert "\n" not in str(err)
        event("SpecError")
        return
    _built_or_refused(spec, where)


@FUZZ
@given(spec_dicts())
def test_any_spec_file_round_trips_or_is_refused(data):
    try:
        text = dumps(data)
    except (TypeError, ValueError):  # a value TOML cannot hold (a nested table): not a spec file at all
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        try:
            spec = resolve_spec(path)
        except SpecError as err:
            assert str(err).startswith(f"{path}: "), err
            return
        assert ModelSpec.from_toml(spec.to_toml(), where=str(path)) == spec


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_a_spec_file_are_refused_naming_the_file(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bytes.toml"
        path.write_bytes(content)
        with pytest.raises(SpecError) as info:
            resolve_spec(path)
        assert str(info.value).startswith(f"{path}: ")


# ---------------------------------------------------------------- data files

FORMATS = ["npy", "npz", "csv", "csv.gz", "idx", "idx.gz"]
IDX_TYPES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}

arrays = st.builds(
    lambda shape, dtype, fill, seed, specials: _array(shape, dtype, fill, seed, specials),
    st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
    st.sampled_from(["uint8", "int8", "float32", "float64", "bool"]),
    st.sampled_from(["binary", "grey", "counts", "signed", "large"]),
    st.integers(0, 2**16),
    st.lists(st.sampled_from([np.nan, np.inf, -np.inf, -1.0]), max_size=2),
)


def _array(shape, dtype, fill, seed, specials):
    rng = np.random.default_rng(seed)
    values = {
        "binary": rng.integers(0, 2, shape),
        "grey": rng.random(shape),
        "counts": rng.integers(0, 9, shape),
        "signed": rng.normal(size=shape) * 3,
        "large": rng.normal(size=shape) * 1e30,
    }[fill]
    with np.errstate(invalid="ignore", over="ignore"):  # e.g. 1e30 cast to uint8: wrapped values are fine here
        values = np.asarray(values).astype(dtype if dtype != "bool" else np.float64)
    if values.size and values.dtype.kind == "f":
        for special in specials:
            values.flat[rng.integers(values.size)] = special
    return values.astype(dtype) if dtype == "bool" else values


def _write(path: Path, values: np.ndarray, fmt: str) -> None:
    if fmt == "npy":
        np.save(path, values)
    elif fmt == "npz":
        np.savez_compressed(path, x=values)
    elif fmt.startswith("csv"):
        text = io.StringIO()
        if values.size:
            np.savetxt(text, values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1), delimiter=",")
        data = text.getvalue().encode()
        path.write_bytes(gzip.compress(data) if fmt.endswith(".gz") else data)
    else:
        values = values.astype(np.float64) if values.dtype not in IDX_TYPES else values
        header = bytes([0, 0, IDX_TYPES[values.dtype], values.ndim]) + struct.pack(f">{values.ndim}i", *values.shape)
        data = header + values.astype(values.dtype.newbyteorder(">")).tobytes()
        path.write_bytes(gzip.compress(data) if fmt.endswith(".gz") else data)


def _corrupt(raw: bytes, how: str, where: float, byte: int) -> bytes:
    if not raw or how == "none":
        return raw
    at = int(where * (len(raw) - 1))
    if how == "truncate":
        return raw[:at]
    if how == "flip":
        return raw[:at] + bytes([raw[at] ^ (byte or 1)]) + raw[at + 1 :]
    return raw[:at] + bytes([byte]) * 16 + raw[at:]  # insert


@FUZZ
@given(
    arrays,
    st.sampled_from(FORMATS),
    st.sampled_from(["none", "none", "truncate", "flip", "insert"]),
    st.floats(0, 1),
    st.integers(0, 255),
)
def test_any_data_file_is_refused_clearly_or_loads_finite_values(values, fmt, how, where, byte):
    with tempfile.TemporaryDirectory() as folder:
        name = {"idx": "fuzz-idx3-ubyte", "idx.gz": "fuzz-idx3-ubyte.gz"}.get(fmt, f"fuzz.{fmt}")
        path = Path(folder) / name
        _write(path, values, fmt)
        path.write_bytes(_corrupt(path.read_bytes(), how, where, byte))
        try:
            data = load_file(path, max_decompressed_bytes=2**20)
        except DataFileError as err:
            assert str(err).startswith(f"{path}: "), err
            event("DataFileError")
            return
        event("loaded")
        assert isinstance(data, ArrayDataset) and len(data) >= 1
        assert torch.isfinite(data.x.double()).all()
        assert values_fit_kind(data.x, data.kind)
        if how == "none" and values.size and np.isfinite(values.astype(np.float64)).all():
            assert data.x.numel() == values.size  # an intact file loads every value
        for kind in ("binary", "grey", "counts", "continuous"):
            try:
                check_data_fits(data, event_shape=data.event_shape, kind=kind)
            except DataMismatchError as err:
                assert str(path) in str(err) and f"expects {kind!r}" in str(err)
