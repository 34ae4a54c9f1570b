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
    "pyromim.priors",
    "pyromim.likelihoods",
    "pyromim.decoder_mixture_marginal",
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
