"""Matplotlib set-up shared by the plots: a file-only backend and consistent saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend (no display needed)."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("pyromim's plots need matplotlib: pip install 'pyromim[plots]'") from err
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def label_colours(labels: Any) -> tuple[list[Any], Any]:
    """Distinct label values (sorted) and the colour map that colours them (``tab10``/``tab20``)."""
    import numpy as np

    values = sorted(int(v) for v in np.unique(np.asarray(labels)))
    cmap = pyplot().get_cmap("tab10" if len(values) <= 10 else "tab20")
    return values, cmap
