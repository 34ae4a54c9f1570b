"""Reading and writing the small TOML subset that specs use.

Reading uses the standard library's ``tomllib`` (``tomli`` before Python 3.11).
Writing covers what specs hold: top-level scalars, then one level of tables
whose values are strings, booleans, numbers or lists of numbers.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        return repr(value)
    if isinstance(value, str):
        # JSON escapes the control characters below 0x20; TOML also forbids DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


def dumps(data: dict[str, Any]) -> str:
    lines = [f"{k} = {_scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            if any(isinstance(v, dict) for v in values.values()):
                raise TypeError(f"nested table under '{table}' is not supported")
            lines += ["", f"[{table}]"] + [f"{k} = {_scalar(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
