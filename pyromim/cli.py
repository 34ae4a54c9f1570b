"""The ``pyromim`` command line: ``train``, ``evaluate``, ``encode`` and ``compare`` models from specs.

Also runnable as ``python -m pyromim``.  Every subcommand logs what it does to
stderr and prints its result table to stdout; bad input (an unknown spec, an
unreadable data file, data that do not fit the model) ends with a one-line
error and exit status 2, a failed training (non-finite loss) with status 1.
Ctrl-C stops training at the next batch, keeps the last epoch's checkpoint and
prints the command that resumes it (status 130); a second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Only light modules at the top: help and argument errors come back without importing
# torch, Pyro or Lightning (the commands import what they need when they run).
from pyromim.infer.objectives import OBJECTIVES, Q_X_CHOICES, compared_objectives

logger = logging.getLogger("pyromim.cli")

#: The options a resume may change (``pyromim train --resume CKPT``); the others come from the run.
RESUME_MAY_CHANGE = ("--epochs", "--devices", "--strategy", "--accelerator", "--num-nodes")

EXAMPLES = """\
examples:
  pyromim train toy4                                 # the MIM paper's toy reference run
  pyromim train toy4 --objective elbo --epochs 20 --out runs/toy4-vae
  pyromim train digits_normal --data images.npz --binarize 0.5
  pyromim train toy4 --devices 2 --strategy ddp      # two processes (CPU here, GPUs where present)
  pyromim train --resume runs/toy4/mim-seed0/checkpoints/last.ckpt  # continue it, nothing repeated
  pyromim evaluate runs/toy4/mim-seed0
  pyromim encode runs/toy4/mim-seed0 --out codes.csv --samples 5   # latent codes of the test part
  pyromim compare toy4 --objectives elbo,amim,mim --seeds 3 --epochs 30 --n-train 5000
"""


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="NAME|PATH",
        help="built-in data set (toy4, toy4_20, digits, digits_continuous, sentences) or a file "
        "(.npy, .npz, .csv, MNIST IDX, .txt text one sentence a line; optionally .gz); default: the spec's own",
    )
    group.add_argument("--labels", metavar="PATH", help="file of integer labels, one per item (for a data file)")
    group.add_argument("--binarize", type=float, metavar="T", help="map file values > T to 1 and the rest to 0")
    group.add_argument("--label-column", metavar="NAME|INDEX", help="CSV column holding the labels")
    for part in ("val", "test"):
        group.add_argument(
            f"--{part}-fraction",
            type=float,
            metavar="F",
            help=f"share of a data file's items kept for {'validation' if part == 'val' else 'testing'} "
            f"(default: the spec's [data] {part}_fraction, else 0.1)",
        )
    group.add_argument(
        "--vocabulary", metavar="PATH", help="text (.txt) data: read with this vocabulary file (vocabulary.json)"
    )
    group.add_argument(
        "--min-count", type=int, metavar="N", help="text data: words seen fewer than N times become <unk>"
    )
    group.add_argument("--lowercase", action="store_true", help="text data: lower-case every line")
    group.add_argument("--truncate", action="store_true", help="text data: cut sentences longer than the model's width")
    group.add_argument(
        "--seed", type=int, default=None, help="seed of data split, initialisation and training (default 0)"
    )
    group.add_argument(
        "--max-decompressed-mb",
        type=float,
        metavar="MB",
        help="most megabytes a compressed data file (.gz, .npz) may expand to (default 1024; "
        "environment variable PYROMIM_MAX_DECOMPRESSED_MB)",
    )


def _cap_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quick runs")
    for part in ("train", "val", "test"):
        group.add_argument(f"--n-{part}", type=int, metavar="N", help=f"use at most N {part} items")
    group.add_argument(
        "--num-samples",
        type=int,
        metavar="S",
        help="importance samples per item for the test NLL (default 1000; on --resume, the run's)",
    )


def _training_arguments(parser: argparse.ArgumentParser, objective: bool = True) -> None:
    group = parser.add_argument_group("training (defaults: the spec's [training] table)")
    if objective:
        group.add_argument(
            "--objective",
            choices=tuple(OBJECTIVES),
            help="elbo: Trace_ELBO (VAE); amim: asymmetric MIM; mim: symmetric MIM; "
            "mim_score: symmetric MIM with the unbiased decoder-side gradient",
        )
    resumable = " (may change on --resume)" if objective else ""  # train's options; compare has no --resume
    group.add_argument("--epochs", type=int, metavar="N", help=f"maximum number of epochs{resumable}")
    group.add_argument("--batch-size", type=int, metavar="B")
    group.add_argument("--lr", type=float, metavar="LR", help="peak learning rate of the Noam schedule")
    group.add_argument("--warmup-epochs", type=int, metavar="N", help="epochs of beta (and learning-rate) warm-up")
    group.add_argument("--patience", type=int, metavar="N", help="early stopping patience in epochs (0: off)")
    group.add_argument("--q-x", choices=Q_X_CHOICES, help="log q(x) estimate of the MIM objectives")
    group.add_argument(
        "--no-compile",
        action="store_true",
        help="train the MIM objectives with the Python loss (Trace_MIM) instead of the compiled one (JitTrace_MIM)",
    )
    devices = parser.add_argument_group("devices")
    devices.add_argument(
        "--devices",
        default="1",
        metavar="N",
        help="number of devices (processes on CPU, GPUs where present), or 'auto'",
    )
    devices.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")
    devices.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (default auto)")
    devices.add_argument("--num-nodes", type=int, default=1, metavar="N", help="machines taking part (default 1)")
    output = parser.add_argument_group("output")
    output.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    output.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in the output directory (else refused)"
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyromim`` command."""
    parser = argparse.ArgumentParser(
        prog="pyromim",
        description="Train, evaluate and compare latent-variable models with the ELBO, A-MIM and MIM.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="print errors and the result only (no progress bar, no warnings)"
    )
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every message and warning, Lightning's own included, and tracebacks of errors",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,encode,compare}", required=True)

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train one model from a spec, evaluate it, write plots",
        description="Train SPEC on its data (or --data), then write checkpoints, metrics.csv, "
        "metrics.json, model.pt, spec.toml, run.json and plots into --out.",
    )
    train.add_argument(
        "spec",
        metavar="SPEC",
        nargs="?",
        help="a spec name from the catalogue (e.g. toy4) or a .toml file (not needed with --resume)",
    )
    _training_arguments(train)
    _data_arguments(train)
    _cap_arguments(train)
    train.add_argument("--out", metavar="DIR", help="run directory (default runs/SPEC/OBJECTIVE-seedS)")
    train.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue the run that wrote CKPT (a last.ckpt) with its own spec, objective, seed, data, caps "
        f"and epoch budget; only {', '.join(RESUME_MAY_CHANGE)} and the output options may differ "
        "(other options, if given, must equal the run's); default --out: the checkpoint's run directory",
    )

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a trained run and print its metrics",
        description="Evaluate a run directory, its model.pt or a training checkpoint "
        "on the test part of its data (or --data) and write the metrics as JSON.",
    )
    evaluate.add_argument("path", metavar="RUN_DIR_OR_CKPT")
    _data_arguments(evaluate)
    evaluate.add_argument("--split", choices=("test", "val", "train"), default="test", help="part to evaluate")
    evaluate.add_argument("--n-train", type=int, metavar="N", help="use at most N training items (KNN)")
    evaluate.add_argument("--n-test", type=int, metavar="N", help="evaluate at most N items")
    evaluate.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        metavar="S",
        help="importance samples per item for the NLL (default 1000)",
    )
    evaluate.add_argument("--json", metavar="PATH", help="where to write the metrics (default RUN_DIR/evaluation.json)")

    encode = sub.add_parser(
        "encode",
        parents=[common],
        help="write the latent codes of data under a trained model",
        description="Encode data with the model of a run directory, its model.pt or a training checkpoint: "
        "the posterior means E[z|x] and, with --samples K, K draws z ~ q(z|x) per item, with the data's "
        "labels where it has them. A data file is encoded whole, in file order; a built-in data set "
        "(or the run's own data) is split as the run split it and --part is encoded.",
    )
    encode.add_argument("path", metavar="RUN_DIR_OR_CKPT")
    _data_arguments(encode)
    encode.add_argument(
        "--out",
        metavar="PATH",
        required=True,
        help=".npy (the means alone), .npz (means, samples, labels) or .csv (a header, one row per item)",
    )
    encode.add_argument("--samples", type=int, default=0, metavar="K", help="posterior draws per item (default 0)")
    encode.add_argument(
        "--part", choices=("test", "val", "train"), default="test", help="part of a split data set (default test)"
    )

    compare = sub.add_parser(
        "compare",
        parents=[common],
        help="train several objectives over several seeds and compare them",
        description="Train SPEC with each objective and seed; print mean and std over seeds "
        "and write compare.json, compare.md and compare.png into --out.",
    )
    compare.add_argument("spec", metavar="SPEC", help="a spec name from the catalogue (e.g. toy4) or a .toml file")
    compare.add_argument(
        "--objectives",
        default=",".join(compared_objectives()),
        metavar="LIST",
        help=f"comma-separated objectives among {', '.join(OBJECTIVES)} (default {','.join(compared_objectives())})",
    )
    compare.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per objective: --seed .. --seed+N-1")
    _training_arguments(compare, objective=False)
    _data_arguments(compare)
    _cap_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="comparison directory (default runs/SPEC/compare)")
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (its errors print its own usage line)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def _version() -> str:
    from pyromim import __version__

    return __version__


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


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.labels:
        options["labels"] = args.labels
    if args.binarize is not None:
        if not math.isfinite(args.binarize):
            raise UsageError(f"--binarize takes a finite threshold (values above it become 1), got {args.binarize}")
        options["binarize"] = args.binarize
    if args.label_column is not None:
        column = args.label_column
        options["label_column"] = int(column) if column.lstrip("-").isdigit() else column
    for key in ("vocabulary", "min_count", "lowercase", "truncate"):
        if getattr(args, key, None) not in (None, False):
            options[key] = getattr(args, key)
    for part in ("val", "test"):
        value = getattr(args, f"{part}_fraction", None)
        if value is not None:
            if not 0 <= value < 1:
                raise UsageError(f"--{part}-fraction must lie in [0, 1) (a share of the items), got {value:g}")
            options[f"{part}_fraction"] = value
    if options.get("val_fraction", 0) + options.get("test_fraction", 0) >= 1:
        raise UsageError("--val-fraction plus --test-fraction must be below 1, so that training items remain")
    if options and args.data is None:
        raise UsageError(
            "--labels, --binarize, --label-column, --val-fraction, --test-fraction and the text options apply "
            "to a data file: give it with --data PATH"
        )
    return options


def _devices(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--devices must be a number or 'auto', got {value!r}") from None


def _run_config(args: argparse.Namespace) -> Any:
    """The :class:`~pyromim.experiments.RunConfig` the options describe.

    Every option named like a field (``--n-train`` sets ``n_train``) sets it;
    ``objective``, ``seed`` and ``resume`` are each command's own, and the
    options below are translated.
    """
    from pyromim.experiments import RunConfig

    own = {"objective", "seed", "resume", "devices", "data_options", "progress", "plots", "compile"}
    by_name = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(RunConfig)
        if field.name not in own and getattr(args, field.name, None) is not None
    }
    return RunConfig().replace(
        **by_name,
        data_options=_data_options(args) or None,
        devices=_devices(args.devices),
        progress=not (args.no_progress or args.quiet),
        plots=not args.no_plots,
        compile=not args.no_compile,
    )


def _writable_directory(path: Path, option: str) -> None:
    """Refuse, before any work, an output directory that cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a directory; give a directory path")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, so the directory cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: {existing} is not writable; choose a directory you can write to")


def _writable_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file path such as {path / 'evaluation.json'}")
    _writable_directory(path.parent, option)


def _check_devices(args: argparse.Namespace) -> None:
    """Refuse an accelerator this machine does not have (Lightning would fail only after the data are
    loaded), and ``--num-nodes`` above 1 outside a cluster (Lightning would wait forever)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry, CUDAAccelerator, MPSAccelerator

    from pyromim.training.cluster import check_num_nodes

    try:
        check_num_nodes(args.num_nodes, "--num-nodes")
    except ValueError as err:
        raise UsageError(str(err)) from None
    # (an unknown --strategy is refused in _check_arguments, before any command runs)
    name = args.accelerator
    if name == "auto":
        return
    if name == "gpu":
        available = CUDAAccelerator.is_available() or MPSAccelerator.is_available()
    elif name in AcceleratorRegistry:
        available = AcceleratorRegistry[name]["accelerator"].is_available()
    else:
        raise UsageError(f"--accelerator {name!r} is not one of: auto, gpu, {', '.join(sorted(AcceleratorRegistry))}")
    if not available:
        raise UsageError(f"--accelerator {name}: this machine has no {name} device; use --accelerator cpu (or auto)")
    devices = _devices(args.devices)
    if name in ("gpu", "cuda") and CUDAAccelerator.is_available() and isinstance(devices, int):
        count = CUDAAccelerator.auto_device_count()
        if devices > count:
            raise UsageError(f"--devices {devices}: this machine has {count} GPU(s)")


@contextmanager
def _limits(args: argparse.Namespace) -> Iterator[None]:
    """Set ``--max-decompressed-mb`` for this command (in the environment, so that the extra
    processes of a multi-device run see it too); restore the caller's environment on exit."""
    from pyromim.data.files import MAX_DECOMPRESSED_ENV

    mb = getattr(args, "max_decompressed_mb", None)
    if mb is None:
        yield
        return
    if not (mb > 0 and math.isfinite(mb)):
        raise UsageError(f"--max-decompressed-mb must be a finite number of megabytes > 0, got {mb:g}")
    saved = os.environ.get(MAX_DECOMPRESSED_ENV)
    os.environ[MAX_DECOMPRESSED_ENV] = repr(mb)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(MAX_DECOMPRESSED_ENV, None)
        else:
            os.environ[MAX_DECOMPRESSED_ENV] = saved


#: The largest seed: NumPy's and Pyro's seeds are 32-bit.
MAX_SEED = 2**32 - 1


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse, before any work, option values that could only fail later: seeds outside
    ``[0, 2**32 - 1]`` (NumPy's and Pyro's range; with ``compare``, every seed of ``--seeds``)
    and a ``--strategy`` Lightning does not know."""
    first, n = getattr(args, "seed", None), getattr(args, "seeds", 1)
    if first is not None and not (0 <= first and first + max(n, 1) - 1 <= MAX_SEED):
        span = f"--seed {first} with --seeds {n} gives seeds up to {first + n - 1}" if n > 1 else f"--seed {first}"
        raise UsageError(f"{span}: seeds must lie in [0, 2**32 - 1]")
    strategy = getattr(args, "strategy", "auto")
    if strategy != "auto":
        from lightning.pytorch.strategies import StrategyRegistry

        from pyromim.specs.validation import nearest

        if strategy not in StrategyRegistry:
            names = ["auto", *sorted(name for name in StrategyRegistry if "find_unused" not in name)]
            raise UsageError(
                f"--strategy {strategy!r} is not a Lightning strategy; use one of: {', '.join(names)}"
                f"{nearest(strategy, names)}"
            )


def _spec_name(spec: str) -> str:
    return Path(spec).stem if spec.endswith(".toml") else spec


#: The command line's ``[training]`` options, by the spec field each sets.
TRAINING_OPTIONS = {
    "batch_size": "--batch-size",
    "lr": "--lr",
    "warmup_epochs": "--warmup-epochs",
    "patience": "--patience",
    "q_x": "--q-x",
}


def _resume_differences(args: argparse.Namespace, saved: Any) -> list[str]:
    """``"--option given (the run's: value)"`` for each option given that differs from the run's own."""
    from pyromim.experiments.runner import spec_differences
    from pyromim.infer.objectives import objective_name
    from pyromim.specs import resolve_spec

    run = saved.settings
    found: list[str] = []

    def differs(option: str, given: Any, own: Any) -> None:
        if given is not None and given != own:
            found.append(f"{option} {given} (the run's: {own})")

    if args.spec is not None:
        training_keys = tuple(f.name for f in dataclasses.fields(saved.spec.training))
        changes = spec_differences(saved.spec.to_toml(), resolve_spec(args.spec).to_toml(), ignore=training_keys)
        if changes:
            found.append(f"SPEC {args.spec} is not the run's spec ({'; '.join(changes[:3])})")
    differs("--objective", objective_name(args.objective) if args.objective else None, run["objective"])
    differs("--seed", args.seed, run["seed"])
    own_data = run["data"] if run["data"] is not None else saved.spec.data.dataset
    if args.data is not None and os.path.normpath(args.data) != os.path.normpath(str(own_data)):
        found.append(f"--data {args.data} (the run's: {own_data})")
    for key, value in _data_options(args).items():
        differs(f"--{key.replace('_', '-')}", value, (run["data_options"] or {}).get(key))
    for part in ("train", "val", "test"):
        differs(f"--n-{part}", getattr(args, f"n_{part}"), run[f"n_{part}"])
    for key, option in TRAINING_OPTIONS.items():
        differs(option, getattr(args, key), getattr(saved.spec.training, key))
    return found


def _resumed_run(args: argparse.Namespace) -> tuple[Any, str, int, Any]:
    """The spec, objective, seed and run configuration that continue the run of ``--resume``:
    the run's own, with the options that may change on resume (:data:`RESUME_MAY_CHANGE`)."""
    from pyromim.experiments.runner import run_directory, saved_run

    saved = saved_run(args.resume)
    differences = _resume_differences(args, saved)
    if differences:
        raise UsageError(
            f"--resume {args.resume}: the run was trained with other settings: {'; '.join(differences)}; "
            f"leave these options out to continue the run as it was (only {', '.join(RESUME_MAY_CHANGE)} "
            "may change), or start a new run with another --out"
        )
    own = {k: v for k, v in saved.settings.items() if not (k == "num_samples" and args.num_samples is not None)}
    config = _run_config(args).replace(**own)
    epochs = args.epochs if args.epochs is not None else saved.spec.training.epochs
    if not saved.stopped and saved.epochs_done < epochs:
        logger.info("resuming %s at epoch %d of %d", run_directory(args.resume), saved.epochs_done + 1, epochs)
    return saved.spec, saved.settings["objective"], saved.settings["seed"], config


def cmd_train(args: argparse.Namespace) -> int:
    from pyromim.experiments import metrics_table, run, run_directory
    from pyromim.infer.objectives import objective_name
    from pyromim.specs import resolve_spec

    if args.resume:
        spec, objective, seed, config = _resumed_run(args)
    else:
        spec = resolve_spec(args.spec)
        objective = objective_name(args.objective or spec.training.objective)
        seed = 0 if args.seed is None else args.seed
        config = _run_config(args)
    out = args.out
    if out is None and args.resume:
        out = run_directory(args.resume)
    out = Path(out) if out else Path("runs") / spec.name / f"{objective}-seed{seed}"
    _writable_directory(out, "--out")
    _check_devices(args)
    args.run_dir = out  # where a resume goes on from after Ctrl-C
    result = run(spec, config, objective=objective, seed=seed, out_dir=out, resume=args.resume)
    if not result.is_global_zero:
        return 0
    if result.metrics is not None:
        part = result.data.test or result.data.val
        print(f"\n{spec.name}, {objective}, seed {seed}: metrics on {part.name if part else 'the data'}\n")
        print(metrics_table(result.metrics))
    print(f"run directory: {result.out_dir}  ({', '.join(sorted(p.name for p in result.plots)) or 'no plots'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pyromim.experiments import evaluate_run, metrics_table, run_directory, write_json

    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, got {args.num_samples}")
    if args.json:
        _writable_file(Path(args.json), "--json")
    elif Path(args.path).exists():
        _writable_directory(run_directory(args.path), "the run directory")
    result = evaluate_run(
        args.path,
        data=args.data,
        data_options=_data_options(args) or None,
        split=args.split,
        seed=args.seed,
        n_train=args.n_train,
        n_test=args.n_test,
        num_samples=args.num_samples,
    )
    out = Path(args.json) if args.json else run_directory(args.path) / "evaluation.json"
    write_json(
        out,
        {
            "source": result.source,
            "data": result.data_name,
            "n_items": result.n_items,
            "num_samples": args.num_samples,
            "metrics": result.metrics,
        },
    )
    print(f"\n{result.spec.name}: metrics on {result.data_name} ({result.n_items} items), from {result.source}\n")
    print(metrics_table(result.metrics))
    print(f"wrote {out}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from pyromim.experiments import encode_run, write_codes

    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz", ".csv"):
        raise UsageError(f"--out {out}: give a file name ending in .npy, .npz or .csv")
    if args.samples < 0:
        raise UsageError(f"--samples must be at least 0, got {args.samples}")
    if args.samples and out.suffix.lower() == ".npy":
        raise UsageError(f"--out {out}: a .npy file holds the means alone; write --samples to a .npz or .csv file")
    _writable_file(out, "--out")
    codes = encode_run(
        args.path,
        data=args.data,
        data_options=_data_options(args) or None,
        part=args.part,
        samples=args.samples,
        seed=args.seed,
    )
    write_codes(codes, out)
    n, d = codes.means.shape
    extras = [f"{args.samples} draws each" if args.samples else "", "labels" if codes.labels is not None else ""]
    shown = ", ".join(e for e in extras if e)
    print(f"wrote {out}: {n} items of {codes.data_name}, {d} latent dimensions{f' ({shown})' if shown else ''}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pyromim.experiments import compare
    from pyromim.infer.objectives import objective_name

    try:
        objectives = [objective_name(o) for o in args.objectives.split(",") if o.strip()]
    except ValueError as err:
        raise UsageError(f"--objectives: {err}") from None
    if not objectives or len(set(objectives)) != len(objectives):
        raise UsageError(f"--objectives must name distinct objectives, got {args.objectives!r}")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    first = 0 if args.seed is None else args.seed
    out = Path(args.out) if args.out else Path("runs") / _spec_name(args.spec) / "compare"
    _writable_directory(out, "--out")
    _check_devices(args)
    result = compare(
        args.spec,
        objectives=objectives,
        seeds=list(range(first, first + args.seeds)),
        out_dir=out,
        plots=not args.no_plots,
        config=_run_config(args),
    )
    if not result.is_global_zero:
        return 0
    n = len(result.runs) // max(len(result.summary), 1)
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    print(f"\n{result.spec}: mean ± std over {n} seed(s), test part\n")
    print(result.table, end="" if result.table.endswith("\n") else "\n")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "encode": cmd_encode, "compare": cmd_compare}


class UsageError(Exception):
    """A command-line option that cannot work (reported in one line, exit status 2)."""


#: The optional dependencies and the extra that installs each.
_EXTRAS = {
    "lightning": "train",
    "sklearn": "metrics",
    "scipy": "metrics",
    "arviz": "metrics",
    "matplotlib": "plots",
    "tqdm": "all",
}


def _missing_extra(err: ImportError) -> str | None:
    """The pyromim extra that installs the module ``err`` could not import, if it is one."""
    return _EXTRAS.get((err.name or "").split(".")[0])


#: Exit status after Ctrl-C (128 + SIGINT, as shells report a process ended by it).
INTERRUPTED_STATUS = 130


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
    return f"interrupted; {held}; resume with: pyromim train --resume {shlex.quote(str(checkpoint))}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyromim`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Errors in what the user gave (a spec, data, a checkpoint, a path, an option)
    are reported in one line with status 2, a diverging training run with status
    1, a missing optional dependency with the extra to install (status 2); any
    other exception is a bug and propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.spec is None and args.resume is None:
        _subparser(parser, "train").error("give a SPEC to train (e.g. toy4, or a .toml file), or --resume CKPT")
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


def console_main() -> None:  # pragma: no cover - the console-script wrapper
    """Entry point of the ``pyromim`` console script."""
    status = main()
    if status == INTERRUPTED_STATUS:
        # every file is written and closed: skip the interpreter's teardown of torch and Lightning
        # (seconds), so that Ctrl-C ends the command at once
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
