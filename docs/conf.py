"""Sphinx configuration of the pyromim documentation.

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
after ``pip install -e ".[docs]"`` (``.ci/run`` does, with warnings as errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's pyromim, even without an install
sys.path.insert(0, str(HERE / "_ext"))

import pyromim  # noqa: E402

project = "pyromim"
author = "pyromim contributors"
copyright = "pyromim contributors"  # noqa: A001
release = pyromim.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
    "pyromim_docs",
]

# the docs folder also holds the README's figures and the paper driver's results
exclude_patterns = ["_build", "paper_results", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {"description": "The Mutual Information Machine for Pyro", "fixed_sidebar": True}

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_inherit_docstrings = False
autoclass_content = "both"

# a reference that resolves nowhere is an error (the build runs with -W), except to
# the libraries pyromim builds on, whose inventories are not fetched at build time
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|pyro|numpy|np|lightning|arviz|az|sklearn|matplotlib|scipy|nn|collections\.abc|pathlib|typing|argparse|os)\..*",
    ),
    (r"py:.*", r"Path|InferenceData|Tensor|PyroModule|Module|ELBOModule"),
    # private type aliases in signatures; the parameter's text spells out what they allow
    (r"py:class", r"QX|GuideInputs"),
]
