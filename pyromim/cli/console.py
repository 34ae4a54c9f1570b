"""What the command line prints while it works: log lines and warnings on stderr, by verbosity."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Only light modules at the top: help and argument errors come back without importing
# torch, Pyro or Lightning (the commands import what they need when they run).

logger = logging.getLogger("pyromim.cli")


class _ConsoleHandler(logging.StreamHandler):
    """Writes each record as one line, ``[pyromim] message`` (``[pyromim] warning: ...`` from
    WARNING up), above a progress bar when one is showing."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"[pyromim] {text}" if record.levelno < logging.WARNING else f"[pyromim] warning: {text}"

    def emit(self, record: logging.LogRecord) -> None:
        if "tqdm" not in sys.modules:  # no bar can be showing
            super().emit(record)
            return
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    # a warning is one line among the others (Python's default prints the source line too)
    logging.getLogger("pyromim.warnings").warning("%s (%s)", message, category.__name__)


@contextmanager
def _logging_for(args: argparse.Namespace) -> Iterator[None]:
    """The console of a command, restored on exit (so that calling :func:`main` in-process leaves
    the caller's logging and warning filters as they were).

    Default: pyromim's steps and warnings on stderr, one line each; Lightning's banner and
    notices and the warnings a user cannot act on are dropped. ``--quiet``: errors only (and
    the result on stdout). ``--verbose``: every message, Lightning's own included.
    """
    from pyromim.experiments.console import is_extra_process, quiet_lightning

    handler = _ConsoleHandler(sys.stderr)
    ours = logging.getLogger("pyromim")
    saved = (ours.level, ours.propagate)
    ours.addHandler(handler)
    if args.verbose:
        ours.setLevel(logging.DEBUG)
    else:
        ours.setLevel(logging.ERROR if args.quiet or is_extra_process() else logging.INFO)
    ours.propagate = False
    try:
        with warnings.catch_warnings(), quiet_lightning():
            warnings.showwarning = _show_warning
            if args.quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]
