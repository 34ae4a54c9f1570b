"""Turning options into settings, and refusing bad ones before any work: paths, devices, seeds, resumes, missing extras."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyromim.cli.parser import RESUME_MAY_CHANGE
from pyromim.settings import SETTINGS, SPEC_SETTINGS, setting_info

# Only light modules at the top: help and argument errors come back without importing
# torch, Pyro or Lightning (the commands import what they need when they run).

logger = logging.getLogger("pyromim.cli")


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

    Every option named like a setting (``--n-train`` sets ``n_train``, ``--lr-schedule``
    sets ``lr_schedule``; ``--no-compile`` turns ``compile`` off) sets it;
    ``objective``, ``seed`` and ``resume`` are each command's own, and the
    options below are translated.
    """
    from pyromim.experiments import RunConfig

    own = {"objective", "seed", "resume", "devices", "data_options", "progress", "plots", "verbose"}
    by_name = {
        name: getattr(args, name)
        for name in RunConfig.settings()
        if name not in own and name not in SETTINGS and getattr(args, name, None) is not None
    }
    for name in SETTINGS:
        flag = setting_info(name)["flag"]
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if flag.startswith("--no-"):
            value = False if value else None
        if name not in own and value is not None:
            by_name[name] = value
    return RunConfig().replace(
        **by_name,
        data_options=_data_options(args) or None,
        devices=_devices(args.devices),
        progress=not (args.no_progress or args.quiet),
        plots=not args.no_plots,
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


#: The command line's names of :func:`~pyromim.specs.from_data.spec_for_data_file`'s choices.
FROM_FILE_OPTIONS = {"likelihood": "--likelihood", "latent_dim": "--latent-dim"}


def _from_file_options(args: argparse.Namespace) -> tuple[str, str]:
    """The options of :data:`FROM_FILE_OPTIONS` given (``"--likelihood and --latent-dim"``, or empty), and
    the verb's ending for them (``""`` for two, ``"s"`` for one)."""
    given = [flag for key, flag in FROM_FILE_OPTIONS.items() if getattr(args, key, None) is not None]
    return " and ".join(given), "" if len(given) > 1 else "s"


def _spec_to_train(args: argparse.Namespace) -> tuple[Any, bool]:
    """The spec ``train`` trains, and whether it was made from a data file: SPEC (a catalogue name or
    a .toml file), or one made from a data file (SPEC naming a data file, or ``--data FILE`` with no
    SPEC), which then becomes ``--data``."""
    from pyromim.specs import resolve_spec
    from pyromim.specs.from_data import looks_like_data_file, spec_for_data_file

    given, s = _from_file_options(args)
    if args.spec is not None and (args.spec.endswith(".toml") or not looks_like_data_file(args.spec)):
        if given:
            raise UsageError(
                f"{given} appl{'ies' if s else 'y'} to training on a data file without a spec (pyromim train "
                f"FILE); to change SPEC {args.spec}, edit [model] in a copy of its .toml file and train that file"
            )
        return resolve_spec(args.spec), False
    if args.spec is not None:
        if args.data is not None and os.path.normpath(args.data) != os.path.normpath(args.spec):
            raise UsageError(
                f"SPEC {args.spec} is a data file and --data {args.data} another: give the data once, "
                f"as SPEC (pyromim train FILE) or with --data beside a spec"
            )
        args.data = args.spec
    made = spec_for_data_file(
        args.data,
        likelihood=args.likelihood,
        latent_dim=args.latent_dim,
        data_options=_data_options(args),
        names=FROM_FILE_OPTIONS,
    )
    logger.info("%s", made.summary())
    return made.spec, True


def _again_command(spec_file: Path, args: argparse.Namespace) -> str:
    """The command that trains ``spec_file`` (a spec made from ``--data``) on the same data again."""
    words = ["pyromim", "train", str(spec_file), "--data", str(args.data)]
    for key, value in _data_options(args).items():
        flag = f"--{key.replace('_', '-')}"
        words += [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


def _spec_name(spec: str) -> str:
    return Path(spec).stem if spec.endswith(".toml") else spec


#: The command line's ``[training]`` options, by the spec field each sets.
TRAINING_OPTIONS = {
    **{name: setting_info(name)["flag"] for name in SPEC_SETTINGS if not setting_info(name)["resumable"]},
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

    given, s = _from_file_options(args)
    if given:
        raise UsageError(
            f"--resume {args.resume} continues the run's own spec; leave out {given} "
            f"({'it' if s else 'they'} make{s} a new spec from a data file)"
        )
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
