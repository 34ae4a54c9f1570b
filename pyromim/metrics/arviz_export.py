"""ArviZ bridge."""

from __future__ import annotations

import warnings
from types import ModuleType


def load_arviz() -> ModuleType:
    """Import ArviZ (an optional dependency: ``pip install pyromim[metrics]``).

    ArviZ announces its coming refactor with a ``FutureWarning`` on import; it
    is not actionable here and is silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz
    except ImportError as err:
        raise ImportError(
            "this metric needs ArviZ; install it with `pip install pyromim[metrics]`"
        ) from err
    return arviz
