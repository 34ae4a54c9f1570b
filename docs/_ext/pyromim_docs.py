"""Sphinx helpers for the pyromim documentation (not part of the package).

* Every name a public package lists in ``__all__`` must be documented somewhere
  (a warning, so an error under ``-W``, names each one that is not); a datum's
  text is its ``#:`` comment where it is defined.
* A reference to a public object by another of its names (``pyromim.Trace_MIM``,
  ``pyromim.infer.trace_mim.Trace_MIM``) resolves to where it is documented; one
  to private pyromim code that exists is shown as code without a link; one to a
  name that exists nowhere (misspelt, renamed, removed) fails the build.
* ``.. spec-keys::`` writes the table of every TOML key of a model spec, its
  type, default and allowed values, from the spec's dataclasses and registries,
  so the page cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------ data in __all__


def _defining_comment(name: str, obj: Any) -> list[str]:
    """The ``#:`` comment of the module-level assignment that defines ``obj`` as ``name``."""
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("pyromim") or getattr(module, name, object()) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source (or a namespace): no comment
            continue
        if ("", name) in docs:
            return list(docs["", name])
    return []


def _process_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what != "data" or not name.startswith("pyromim"):
        return
    comment = _defining_comment(name.rsplit(".", 1)[-1], obj)
    if comment:  # rather than the docstring of the value's type (dict, tuple)
        lines[:] = comment
    if len(repr(obj)) > 70:
        lines.extend(["", ":meta hide-value:"])


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """Show a private base class (``_CountLikelihood``) as its first public ancestor."""
    for i, base in enumerate(bases):
        while isinstance(base, type) and base.__name__.startswith("_") and base.__module__.startswith("pyromim"):
            base = base.__mro__[1]
        bases[i] = base


# ------------------------------------------------------------ references by alias


def _import_dotted(path: str) -> Any:
    """The object a dotted path names, attributes before submodules (``pyromim.metrics.evaluate`` is the function)."""
    parts = path.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, attr in enumerate(parts[1:], start=2):
        if not hasattr(obj, attr):
            importlib.import_module(".".join(parts[:i]))
        obj = getattr(obj, attr)
    return obj


def _missing_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``pyromim.X`` (or a short name in a pyromim module) to the place ``X`` is documented."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    domain = env.get_domain("py")
    candidates = [target]
    module = node.get("py:module")
    if module and not target.startswith("pyromim"):
        candidates.append(f"{module}.{target}")
    if "." not in target:  # a short name: the one documented pyromim object of that name
        named = {
            n
            for n, e in domain.objects.items()
            if not e.aliased and n.startswith("pyromim") and n.endswith(f".{target}")
        }
        if len(named) == 1:
            candidates.extend(named)
    for candidate in candidates:
        if not candidate.startswith("pyromim"):
            continue
        try:
            obj = _import_dotted(candidate)
        except (ImportError, AttributeError):
            continue
        for documented, entry in domain.objects.items():
            if entry.aliased or not documented.startswith("pyromim"):
                continue
            try:
                same = _import_dotted(documented) is obj
            except (ImportError, AttributeError):
                continue
            if same and (isinstance(obj, (type, types.FunctionType, types.ModuleType, dict, tuple, list))):
                return domain.resolve_xref(
                    env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode
                ) or domain.resolve_any_xref(env, node["refdoc"], app.builder, documented, node, contnode)
    if _exists_in_pyromim(candidates):
        return contnode  # private code that exists: shown as code, without a link
    return None


def _exists_in_pyromim(candidates: list[str]) -> bool:
    """Whether a reference names pyromim code that exists (a private module, class or alias).

    Only a name that exists nowhere in pyromim (misspelt, renamed, removed) is a broken reference.
    """
    for candidate in candidates:
        if candidate.startswith("pyromim"):
            try:
                _import_dotted(candidate)
                return True
            except (ImportError, AttributeError):
                pass
    short = candidates[0]
    if "." in short:
        return False
    return any(
        name.startswith("pyromim") and isinstance(module, types.ModuleType) and short in vars(module)
        for name, module in list(sys.modules.items())
    )


#: The packages whose ``__all__`` is the public API.
PUBLIC_MODULES = (
    "pyromim",
    "pyromim.infer",
    "pyromim.blocks.priors",
    "pyromim.blocks.likelihoods",
    "pyromim.blocks.marginals",
    "pyromim.nn",
    "pyromim.distributions",
    "pyromim.specs",
    "pyromim.models",
    "pyromim.metrics",
    "pyromim.training",
    "pyromim.data",
    "pyromim.experiments",
    "pyromim.plots",
)


def _documented_objects(env: Any) -> list[Any]:
    found = []
    for name, entry in env.get_domain("py").objects.items():
        if entry.aliased or not name.startswith("pyromim"):
            continue
        try:
            found.append(_import_dotted(name))
        except (ImportError, AttributeError):
            continue
    return found


def _check_coverage(app: Any, env: Any) -> None:
    """Warn about each public name (``__all__``) that no page documents."""
    documented = _documented_objects(env)
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            if not any(obj is d for d in documented):
                logger.warning("%s.%s is public (in __all__) but no page documents it", modname, name)


# ------------------------------------------------------------------ TOML key table


def _inline_comments(cls: type) -> dict[str, str]:
    """``field -> comment`` for fields written ``name: type = value  # comment`` in ``cls``'s source."""
    import inspect

    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    line_field: dict[int, str] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        head = stripped.split(":", 1)[0]
        if head.isidentifier() and ":" in stripped and head in {f.name for f in dataclasses.fields(cls)}:
            line_field[number] = head
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.start[0] in line_field:
            comments[line_field[token.start[0]]] = token.string.lstrip("#").strip()
    return comments


def _type_name(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    return text.replace("list[int]", "list of int").replace(" | None", " (optional)")


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"``{_toml_value(f.default)}``"
    if f.default_factory is not dataclasses.MISSING:
        return f"``{_toml_value(f.default_factory())}``"
    return "**required**"


def spec_tables() -> Iterator[tuple[str, type, str]]:
    """``(table, dataclass, what it is)`` for each table of a spec, in file order."""
    from pyromim.specs import schema

    yield "(top level)", schema.ModelSpec, "the spec's name and description"
    for table, cls in (
        ("data", schema.DataSpec),
        ("model", schema.ArchitectureSpec),
        ("encoder", schema.NetworkSpec),
        ("decoder", schema.NetworkSpec),
        ("training", schema.TrainingSpec),
    ):
        yield table, cls, (cls.__doc__ or "").strip()


def spec_key_rows() -> list[tuple[str, str, str, str, str]]:
    """``(key, type, default, allowed values, meaning)`` for every key a spec file may hold."""
    rows = []
    for table, cls, _ in spec_tables():
        hints = typing.get_type_hints(cls)
        comments = _inline_comments(cls)
        for f in dataclasses.fields(cls):
            if table == "(top level)" and dataclasses.is_dataclass(hints[f.name]):
                continue
            choices = f.metadata.get("choices")
            allowed = ", ".join(f"``{_toml_value(c)}``" for c in choices) if choices is not None else ""
            key = f.name if table == "(top level)" else f"{table}.{f.name}"
            annotation = f.type if isinstance(f.type, str) else _type_name(hints[f.name])
            rows.append((f"``{key}``", _type_name(annotation), _default(f), allowed, comments.get(f.name, "")))
    return rows


class SpecKeys(SphinxDirective):
    """``.. spec-keys::``: a table of every spec key, read from :mod:`pyromim.specs.schema`."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        header = ("key", "type", "default", "allowed values", "meaning")
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 20 12 14 24 30", ""]
        rows = spec_key_rows()
        for key, *_, meaning in rows:
            if not meaning:
                logger.warning("spec key %s has no '# comment' in pyromim.specs.schema to say what it means", key)
        for row in (header, *rows):
            lines.append(f"   * - {row[0]}")
            lines.extend(f"     - {cell}" for cell in row[1:])
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="pyromim.specs.schema"), self.content_offset, container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-check-consistency", _check_coverage)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-process-bases", _public_bases)
    app.add_directive("spec-keys", SpecKeys)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
