"""Names a package exports but imports on first use (PEP 562), so that importing it stays cheap.

``import pyromim`` and the command line's help and argument errors then need
neither torch nor Pyro; ``from pyromim import Trace_MIM`` imports them when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, Sequence[str]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    :param homes: ``{module: names}``: each name is imported from its module when first read
        (then kept in ``namespace``, the package's ``globals()``).  Any other public name is
        tried as a subpackage (``import pyromim; pyromim.metrics``).
    """
    home = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in home:
            value = getattr(importlib.import_module(home[name]), name)
            namespace[name] = value
            return value
        if not name.startswith("_"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home))

    return __getattr__, __dir__
