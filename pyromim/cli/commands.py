"""The subcommands: ``train``, ``evaluate``, ``encode`` and ``compare``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pyromim.cli.checks import (
    UsageError,
    _again_command,
    _check_devices,
    _data_options,
    _resumed_run,
    _run_config,
    _spec_name,
    _spec_to_train,
    _writable_directory,
    _writable_file,
)

# Only light modules at the top: help and argument errors come back without importing
# torch, Pyro or Lightning (the commands import what they need when they run).

logger = logging.getLogger("pyromim.cli")


def cmd_train(args: argparse.Namespace) -> int:
    from pyromim.experiments import metrics_table, run, run_directory
    from pyromim.experiments.runner import SPEC_FILE
    from pyromim.infer.objectives import objective_name

    made_from_file = False
    if args.resume:
        spec, objective, seed, config = _resumed_run(args)
    else:
        spec, made_from_file = _spec_to_train(args)
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
    if made_from_file:
        again = _again_command(out / SPEC_FILE, args)
        print(f"spec made from {args.data}: {out / SPEC_FILE}; edit it and train it again with: {again}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pyromim.experiments import evaluate_run, metrics_table, run_directory, write_json

    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, got {args.num_samples}")
    if args.nll_refit is not None and args.nll_refit < 0:
        raise UsageError(f"--nll-refit must be 0 (the encoder as proposal) or more steps, got {args.nll_refit}")
    if args.nll_ais < 0 or args.nll_ais_chains < 1:
        raise UsageError(
            f"--nll-ais must be 0 (off) or more temperatures and --nll-ais-chains at least 1, got "
            f"{args.nll_ais} and {args.nll_ais_chains}"
        )
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
        nll_refit_steps=args.nll_refit,
        nll_ais_steps=args.nll_ais,
        nll_ais_chains=args.nll_ais_chains,
    )
    out = Path(args.json) if args.json else run_directory(args.path) / "evaluation.json"
    write_json(
        out,
        {
            "source": result.source,
            "data": result.data_name,
            "n_items": result.n_items,
            "num_samples": args.num_samples,
            "nll_refit": args.nll_refit,
            **({"nll_ais": args.nll_ais, "nll_ais_chains": args.nll_ais_chains} if args.nll_ais else {}),
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
