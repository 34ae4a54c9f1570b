"""The public API: every name a package lists in ``__all__`` exists, and the library never imports the paper harness."""

import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = [
    "pyromim",
    "pyromim.infer",
    "pyromim.metrics",
    "pyromim.specs",
    "pyromim.models",
    "pyromim.data",
    "pyromim.nn",
    "pyromim.distributions",
    "pyromim.blocks",
    "pyromim.blocks.priors",
    "pyromim.blocks.likelihoods",
    "pyromim.blocks.marginals",
    "pyromim.training",
    "pyromim.experiments",
    "pyromim.plots",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists missing names: {missing}"


def test_the_library_does_not_import_the_paper_harness():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "pyromim").rglob("*.py")
        if "from paper" in p.read_text() or "import paper" in p.read_text()
    ]
    assert not offenders, offenders


#: Lower layers (and the building blocks they use) never import a higher layer.
LOWER = (
    "infer",
    "metrics",
    "data",
    "nn",
    "distributions",
    "specs",
    "blocks",
    "ops",
)
HIGHER = ("models", "training", "experiments", "plots", "cli")


def _pyromim_imports(path: pathlib.Path) -> set[str]:
    """First component below ``pyromim`` of every ``pyromim.*`` import in a source file."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("pyromim.")}
    return found


@pytest.mark.parametrize("layer", LOWER)
def test_no_import_from_a_lower_layer_to_a_higher_one(layer):
    package = ROOT / "pyromim" / layer
    files = sorted(package.rglob("*.py")) if package.is_dir() else [package.with_suffix(".py")]
    assert files and all(f.exists() for f in files)
    upward = {str(f.relative_to(ROOT)): sorted(_pyromim_imports(f) & set(HIGHER)) for f in files}
    assert not {f: up for f, up in upward.items() if up}
