"""Building dataclasses from plain dicts with precise error messages.

Checks every key against the dataclass fields (unknown keys suggest the
nearest valid one), every value against the field's type (``int``, ``float``,
``str``, ``bool``, ``list[int]``, ``X | None`` and nested dataclasses) and,
where a field's metadata lists ``choices``, against those choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

#: The largest integer TOML (and a C ``long``) holds; Python's reader accepts larger ones.
MAX_INT = 2**63 - 1


class SpecError(ValueError):
    """A model specification is invalid; the message names the key and what is allowed."""


def nearest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(value, inner, key, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SpecError(f"{where}: '{key}' must be a table, got {type(value).__name__} {value!r}")
        return from_dict(typing.cast(type, tp), value, where, prefix=key + ".")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise SpecError(
                f"{where}: '{key}' must be a list of {_type_name(inner)}, got {type(value).__name__} {value!r}"
            )
        return [_check_value(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            if tp is int and abs(value) > MAX_INT:
                raise SpecError(f"{where}: '{key}' = {value} is too large (TOML integers stop at 2**63 - 1)")
            return value
        raise SpecError(f"{where}: '{key}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    raise TypeError(f"unsupported spec field type {tp!r} for '{key}'")  # pragma: no cover


def from_dict(cls: type[T], data: dict[str, Any], where: str, prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``, validating keys, types and choices."""
    fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            hint = (
                nearest(key, fields) or f"; the keys{f' of [{prefix[:-1]}]' if prefix else ''} are: {', '.join(fields)}"
            )
            raise SpecError(f"{where}: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"{where}: missing required key '{key}'")
            continue
        value = _check_value(data[name], hints[name], key, where)
        choices = f.metadata.get("choices")
        if choices is not None and value is not None and value not in choices:
            raise SpecError(
                f"{where}: '{key}' = {value!r} is not one of: {', '.join(map(str, choices))}"
                f"{nearest(str(value), map(str, choices))}"
            )
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """The dataclass as nested dicts, leaving out ``None`` values (TOML has no null)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return out
