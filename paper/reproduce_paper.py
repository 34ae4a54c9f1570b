"""Run every paper experiment (full settings) in one pool of worker processes.

    python -m paper.reproduce_paper --jobs 16 --out results/paper

writes ``OUT/<example>/results.json`` (each finished run appended atomically,
so a run stopped at any time leaves the finished runs readable), the
examples' figures and ``results.md`` tables, and ``OUT/results.md`` with all
tables. Runs are ordered seed by seed (every setting of seed 1, then seed 2,
...), so a shortened sweep still has whole seeds; at ``--budget`` seconds the
runs still going are stopped and the tables and figures are written from what
finished. ``--replot OUT`` redraws everything from the results files.

Defaults: ``toy4`` at 5, 20, 50, 100, 200 and 500 hidden units with 3 seeds
(36 runs), ``toy4_20`` (standardised, see ``toy_bottleneck.py``) at latent
2, 4, 8, 12 and 20 with 2 seeds (20 runs), the entropy ablation at 50 hidden
units with 3 seeds capped at 60 epochs (6 runs) and digits (3 priors x 3
objectives, seed 1; 9 runs), no other epoch cap (early stopping ends most runs
after 20-140 epochs). A ``toy4`` run takes 1-3 minutes on one core (MIM at 5
hidden units the longest), a standardised ``toy4_20`` run about 1-2 minutes,
a digits run well under one. With ``--jobs 2`` on two cores the first two
seeds of everything took about 35 minutes and the third about 15 more;
``--budget`` stops what is still running then (the last seed) and the reports
use what finished.
"""

import argparse
import importlib
import sys
import time
from pathlib import Path

from paper.sweep import ResultsFile, SweepOptions, load_results, run_tasks

#: example module -> (swept values, seeds, epoch cap) run by default
DEFAULTS = {
    "toy_expressiveness": ("5,20,50,100,200,500", 3, None),
    "toy_bottleneck": ("2,4,8,12,20", 2, None),
    "entropy_ablation": ("50", 3, 60),
    "digits": (None, 1, None),
}


def copy_figures(out: Path, docs: Path, names) -> None:
    """Copy each example's main figures to ``docs`` as 64-colour PNGs (a few tens of kB each)."""
    from PIL import Image  # installed with matplotlib

    docs.mkdir(parents=True, exist_ok=True)
    for name in names:
        for figure in sorted((out / name).glob("*.png")):
            target = docs / (figure.name if name == "digits" else f"{name}_{figure.name}")
            image = Image.open(figure).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
            image.save(target, optimize=True)
            print(f"{target} ({target.stat().st_size // 1024} kB)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=16, help="worker processes (one thread each)")
    parser.add_argument("--out", type=Path, default=Path("results") / "paper", help="output folder")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per toy setting (default: 3; digits: 1)")
    parser.add_argument("--budget", type=float, default=500.0, help="wall-clock seconds before stopping runs")
    parser.add_argument("--quick", action="store_true", help="each example's quick mode (a smoke test)")
    parser.add_argument("--only", type=str, default=None, help="comma-separated example names")
    parser.add_argument("--replot", type=Path, default=None, help="an OUT folder to redraw (no training)")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="also copy the main figures here as small PNGs (<example>_panels.png, ...)",
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    names = args.only.split(",") if args.only else list(DEFAULTS)
    modules = {name: importlib.import_module(f"paper.{name}") for name in names}
    out = args.replot or args.out
    reported: dict[str, str] = {}

    def report(name: str, results: dict) -> None:
        reported[name] = modules[name].report(results, out / name)
        (out / name / "results.md").write_text(reported[name] + "\n", encoding="utf-8")
        print(f"== {name}: {len([r for r in results['runs'] if 'metrics' in r])} runs reported", flush=True)

    if args.replot is None:
        files, totals, tasks = {}, {}, []
        for order, name in enumerate(names):
            settings, seeds, epochs = DEFAULTS[name]
            if args.quick:
                seeds = 1
            elif name != "digits" and args.seeds is not None:
                seeds = args.seeds
            options = SweepOptions(quick=args.quick, seeds=seeds, settings=None if args.quick else settings)
            mine = modules[name].build_tasks(options, out / name)
            if epochs is not None and not args.quick:
                mine = [{**t, "epochs": epochs} for t in mine]
            tasks += [(t["seed"], order, i, name, t) for i, t in enumerate(mine)]
            totals[name] = len(mine)
            files[name] = ResultsFile(
                out / name / "results.json",
                name,
                {
                    "quick": args.quick,
                    "settings": options.settings,
                    "seeds": options.seeds,
                    "jobs": args.jobs,
                    "epochs_cap": epochs,
                    "budget_s": args.budget,
                    "tasks": len(mine),
                    "driver": "reproduce_paper.py",
                },
            )
        # seed by seed (a budget cut leaves whole seeds), the toy4_20 runs first within a seed
        tasks.sort(key=lambda t: (t[0], t[3] != "toy_bottleneck", t[1], t[2]))
        print(
            f"{len(tasks)} runs ({', '.join(f'{n} {totals[n]}' for n in names)}) with {args.jobs} workers, "
            f"budget {args.budget:.0f} s -> {out}",
            flush=True,
        )

        def on_result(record: dict) -> None:
            name = record["experiment"]
            files[name].append(record)
            runs = files[name].data["runs"]
            print(
                f"[{time.monotonic() - start:5.0f} s] {name} {len(runs)}/{totals[name]}: "
                f"{Path(record['run_dir']).name} {record.get('error', '')}",
                flush=True,
            )
            if len(runs) == totals[name]:
                report(name, files[name].data)

        for *_, name, task in tasks:
            task["experiment"] = name
        run_tasks([t for *_, t in tasks], on_result, jobs=args.jobs, deadline=start + args.budget)
        for name in names:
            if name not in reported:
                report(name, files[name].data)
    else:
        for name in names:
            path = out / name / "results.json"
            if path.exists():
                report(name, load_results(path))
    (out / "results.md").write_text("\n\n".join(reported[n] for n in names if n in reported) + "\n", encoding="utf-8")
    if args.docs is not None:
        copy_figures(out, args.docs, names)
    print(f"done in {time.monotonic() - start:.0f} s; tables in {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
