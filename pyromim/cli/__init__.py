"""The ``pyromim`` command line: ``train``, ``evaluate``, ``encode`` and ``compare`` models from specs.

``train`` also takes a data file in place of a spec (``pyromim train data.npy
--likelihood bernoulli``): a spec is made from the file's item shape and data
kind and kept in the run directory as ``spec.toml``.

Also runnable as ``python -m pyromim``.  Every subcommand logs what it does to
stderr and prints its result table to stdout; bad input (an unknown spec, an
unreadable data file, data that do not fit the model) ends with a one-line
error and exit status 2, a failed training (non-finite loss) with status 1.
Ctrl-C stops training at the next batch, keeps the last epoch's checkpoint and
prints the command that resumes it (status 130); a second Ctrl-C exits at once.
In a data-parallel run (``--devices 2 --strategy ddp``) every process stops at
the same batch, whether the signal reached the whole process group (Ctrl-C in
a terminal) or only the launching process (``kill -INT``); the line is printed
once, repeats the run's device options, and the launcher returns after the
processes it started have ended. A Ctrl-C while the processes start up stops
the run at its first batch, once all have started (about 5 s on 2 CPU cores,
where ``tests/test_interrupts.py`` runs it).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence

from pyromim.cli.checks import UsageError, _check_arguments, _limits, _missing_extra
from pyromim.cli.commands import COMMANDS
from pyromim.cli.console import _logging_for
from pyromim.cli.parser import _subparser, build_parser

# Only light modules at the top (here and in the package's modules): help and argument errors
# come back without importing torch, Pyro or Lightning (the commands import what they need).

__all__ = ["build_parser", "console_main", "main"]

logger = logging.getLogger("pyromim.cli")

INTERRUPTED_STATUS = 130


def _device_options(args: argparse.Namespace) -> list[str]:
    """The device options given to this run that differ from the defaults: a resume must repeat
    them, as the number of processes sets the batches each optimiser step sees."""
    train = _subparser(build_parser(), "train")
    options = []
    for flag in ("--devices", "--strategy", "--accelerator", "--num-nodes"):
        dest = flag[2:].replace("-", "_")
        value = getattr(args, dest, None)
        if value is not None and value != train.get_default(dest):
            options += [flag, str(value)]
    return options


def _interrupted(args: argparse.Namespace, argv: Sequence[str] | None, err: KeyboardInterrupt) -> str:
    """The line printed after Ctrl-C: what is kept and the command that goes on from it."""
    if args.command == "compare":
        again = shlex.join(["pyromim", *(sys.argv[1:] if argv is None else argv)])
        return f"interrupted; finished runs are kept; continue with the same command: {again}"
    if args.command != "train":
        return "interrupted"
    checkpoint = getattr(err, "checkpoint", None)
    out = getattr(args, "run_dir", None)
    if checkpoint is None and out is not None and (out / "checkpoints" / "last.ckpt").is_file():
        checkpoint = out / "checkpoints" / "last.ckpt"
    if checkpoint is None:
        return "interrupted before the first epoch ended; nothing to resume (start the run again)"
    epochs = getattr(err, "epochs_completed", None)
    held = f"{checkpoint} holds epoch {epochs}" if epochs else f"{checkpoint} is kept"
    again = shlex.join(["pyromim", "train", "--resume", str(checkpoint), *_device_options(args)])
    return f"interrupted; {held}; resume with: {again}"


def _global_rank(err: KeyboardInterrupt) -> int:
    """The data-parallel rank of this process: the interruption's, else the one its launcher set."""
    rank = getattr(err, "global_rank", None)
    if rank is None:  # interrupted outside training: the variables Lightning's launcher sets
        rank = next((os.environ[key] for key in ("RANK", "LOCAL_RANK") if key in os.environ), 0)
    return int(rank)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyromim`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Errors in what the user gave (a spec, data, a checkpoint, a path, an option)
    are reported in one line with status 2, a diverging training run with status
    1, a missing optional dependency with the extra to install (status 2); any
    other exception is a bug and propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.spec is None and args.resume is None and args.data is None:
        _subparser(parser, "train").error(
            "give a SPEC to train (e.g. toy4, a .toml file, or a data file), or --resume CKPT"
        )
    from pyromim._run_dir import RunDirectoryError
    from pyromim.blocks.likelihoods import DataSupportError
    from pyromim.data import DataFileError, DataMismatchError
    from pyromim.infer import GuideInputsError, NonFiniteLossError
    from pyromim.models import CheckpointError
    from pyromim.specs import SpecError

    user_errors = (
        UsageError,
        SpecError,
        DataMismatchError,
        DataFileError,
        DataSupportError,
        CheckpointError,
        RunDirectoryError,
        GuideInputsError,
        FileNotFoundError,
    )
    try:
        with _logging_for(args), _limits(args):
            _check_arguments(args)
            return COMMANDS[args.command](args)
    except NonFiniteLossError as err:
        if args.verbose:
            raise
        print(f"pyromim {args.command}: training failed: {err}", file=sys.stderr)
        return 1
    except user_errors as err:
        if args.verbose:
            raise
        print(f"pyromim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line saying how to go on
        if _global_rank(err) == 0:  # not once per data-parallel process
            print(f"pyromim {args.command}: {_interrupted(args, argv, err)}", file=sys.stderr)
        return INTERRUPTED_STATUS
    except ImportError as err:
        extra = _missing_extra(err)
        if extra is None or args.verbose:
            raise
        module = (err.name or "").split(".")[0]
        print(
            f"pyromim {args.command} needs {module}, which is not installed: "
            f"install pyromim[{extra}] (pip install 'pyromim[{extra}]')",
            file=sys.stderr,
        )
        return 2


def _defer_sigint_in_a_launched_rank() -> None:
    """In a data-parallel process that a launcher started (``LOCAL_RANK`` 1, 2, ...), hold SIGINT
    back until training's handler takes it: a terminal's Ctrl-C reaches every process, and one
    ended while it starts up would take the launcher down with it (Lightning kills the group when
    a rank fails), where a held signal stops all ranks at the first batch."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def console_main() -> None:  # pragma: no cover - the console-script wrapper
    """Entry point of the ``pyromim`` console script."""
    _defer_sigint_in_a_launched_rank()
    status = main()
    if status == INTERRUPTED_STATUS:
        # every file is written and closed: skip the interpreter's teardown of torch and Lightning
        # (seconds), so that Ctrl-C ends the command at once
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
