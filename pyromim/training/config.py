"""Every setting of one :func:`~pyromim.training.fit` call: :class:`TrainConfig`.

The class is declared in :mod:`pyromim.settings` (a module that needs no torch or
Lightning, so that the command line's help is built from it); this is its home
in the training package.
"""

from __future__ import annotations

from pyromim.settings import LR_SCHEDULES, TrainConfig

__all__ = ["LR_SCHEDULES", "TrainConfig"]
