"""The layout of the library's source: no function is longer than a reader can take in at once,
and no module longer than one can find one's way around."""

import ast
import pathlib

#: The most lines a function may span, from its ``def`` to its last line (docstring included).
MAX_FUNCTION_LINES = 80

#: The most lines a module of the package may have.
MAX_MODULE_LINES = 600

#: ``path:function`` of the functions allowed to be longer, each with its reason.
LONG_FUNCTIONS: set[str] = set()


def long_functions(limit: int) -> dict[str, int]:
    """``{"pyromim/module.py:function": lines}`` of every function (methods and nested ones too)
    in the package that spans more than ``limit`` lines."""
    root = pathlib.Path(__file__).resolve().parents[1] / "pyromim"
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found[f"{path.relative_to(root.parent).as_posix()}:{node.name}"] = lines
    return found


def test_no_library_function_is_longer_than_the_limit():
    too_long = {name: n for name, n in long_functions(MAX_FUNCTION_LINES).items() if name not in LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them into helpers): {too_long}"


def test_every_allowed_long_function_exists_and_is_still_long():
    stale = set(LONG_FUNCTIONS) - set(long_functions(MAX_FUNCTION_LINES))
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, or gone: remove {sorted(stale)} from LONG_FUNCTIONS"


def long_modules(limit: int) -> dict[str, int]:
    """``{"pyromim/module.py": lines}`` of every module in the package with more than ``limit`` lines."""
    root = pathlib.Path(__file__).resolve().parents[1] / "pyromim"
    found = {}
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found[path.relative_to(root.parent).as_posix()] = lines
    return found


def test_no_library_module_is_longer_than_the_limit():
    too_long = long_modules(MAX_MODULE_LINES)
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (move a cohesive part into its own module): {too_long}"
