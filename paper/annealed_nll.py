#!/usr/bin/env python
"""The likelihood of trained runs whose importance-sampled NLL is unreliable, by annealed importance sampling.

A sharp encoder (A-MIM with a low scale floor) leaves importance sampling with
heavy-tailed weights even from proposals refitted per item: the NLL is then only
an upper bound on average and the tables mark it invalid. This re-estimates it
for each run directory given, on the first ``--n-test`` items of the run's own
test data, twice:

* ``is``: importance sampling as the tables have it (1000 samples, the guide, refitted
  proposals where the guide's k-hat share is over 0.3);
* ``ais``: annealed importance sampling (:func:`pyromim.metrics.ais_log_likelihood`)
  from the refitted proposals, with each ``--steps`` count of temperatures and
  ``--chains`` chains an item, PSIS k-hat on the chains' weights.

``--reference`` runs (the ELBO's, whose importance-sampled NLL is valid) are
estimated by importance sampling alone, and each run's NLL is divided by the
reference of its model and seed on the same items.

    python -m paper.annealed_nll RUN_DIR ... --reference ELBO_RUN_DIR ... --out FILE
    python -m paper.annealed_nll --table FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyromim.metrics.likelihood import nll_unreliable

KEYS = ("nll", "psis_khat_bad_fraction")


def _estimate(path: Path, n_test: int, **options: Any) -> dict[str, float]:
    from pyromim.experiments import evaluate_run

    start = time.perf_counter()
    metrics = evaluate_run(path, n_test=n_test, keys=KEYS, **options).metrics
    return {
        "nll": float(metrics["nll"]),
        "khat_bad_fraction": float(metrics["psis_khat_bad_fraction"]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _run_info(path: Path) -> dict[str, Any]:
    if not path.is_dir() or not (path / "run.json").is_file():
        raise SystemExit(f"{path}: not a run directory (no run.json); give directories 'pyromim train' wrote")
    info = json.loads((path / "run.json").read_text())
    keep = {"spec": info.get("spec"), "objective": info.get("objective", "mim"), "seed": info.get("seed", 0)}
    return {"run_dir": str(path), **keep}


def annealed_nll(
    runs: Sequence[str], references: Sequence[str], *, n_test: int, steps: Sequence[int], chains: int
) -> dict[str, Any]:
    """Estimate each run's NLL by importance and annealed importance sampling, each reference's by
    importance sampling (see the module's text)."""
    records = []
    for source, annealed in [(r, True) for r in runs] + [(r, False) for r in references]:
        path = Path(source)
        record = {**_run_info(path), "reference": not annealed}
        record["is"] = _estimate(path, n_test, num_samples=1000)
        print(f"{path}: importance sampling {record['is']}", flush=True)
        if annealed:
            record["ais"] = {}
            for k in steps:
                record["ais"][str(k)] = _estimate(path, n_test, nll_ais_steps=k, nll_ais_chains=chains)
                print(f"{path}: AIS, {k} temperatures {record['ais'][str(k)]}", flush=True)
        records.append(record)
    return {
        "experiment": "annealed_nll",
        "settings": {"n_test": n_test, "steps": list(steps), "chains": chains, "is_samples": 1000},
        "runs": records,
    }


def _cell(estimate: Mapping[str, float]) -> str:
    mark = " invalid" if nll_unreliable(estimate["khat_bad_fraction"]) else ""
    return f"{estimate['nll']:.2f} ({estimate['khat_bad_fraction']:.2f}){mark}"


def annealed_table(content: Mapping[str, Any]) -> str:
    """Markdown: one row per run, NLL (k-hat share) by each estimator, and the ratio of the annealed
    NLL at the most temperatures to the reference NLL of its model and seed."""
    steps = [str(k) for k in content["settings"]["steps"]]
    reference = {(r["spec"], r["seed"]): r["is"]["nll"] for r in content["runs"] if r["reference"]}
    lines = [
        "| run | seed | importance sampling | "
        + " | ".join(f"AIS, {k} temperatures" for k in steps)
        + " | AIS / reference's NLL |",
        "|---" * (4 + len(steps)) + "|",
    ]
    for r in content["runs"]:
        if r["reference"]:
            cells = ["" for _ in steps] + ["reference"]
        else:
            last = r["ais"][steps[-1]]
            key = (r["spec"], r["seed"])
            ratio = f"{last['nll'] / reference[key]:.3f}x" if key in reference else ""
            cells = [_cell(r["ais"][k]) for k in steps] + [ratio]
        lines.append(f"| {Path(r['run_dir']).name} | {r['seed']} | {_cell(r['is'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="run directories to estimate by both estimators")
    parser.add_argument("--reference", nargs="*", default=[], help="run directories estimated by importance sampling")
    parser.add_argument("--n-test", type=int, default=100, help="items of each run's test data (default 100)")
    parser.add_argument("--steps", default="500", help="comma-separated temperature counts (default 500)")
    parser.add_argument("--chains", type=int, default=32, help="AIS chains an item (default 32)")
    parser.add_argument("--out", help="write the estimates here (JSON)")
    parser.add_argument("--table", metavar="FILE", help="print the table of a JSON this wrote, and stop")
    args = parser.parse_args(argv)
    if args.table:
        content = json.loads(Path(args.table).read_text())
        if content.get("experiment") != "annealed_nll":
            raise SystemExit(f"{args.table}: not a file written by paper.annealed_nll")
    elif args.runs:
        try:
            steps = [int(k) for k in args.steps.split(",")]
        except ValueError:
            parser.error(f"--steps: give comma-separated whole numbers, got {args.steps!r}")
        if min(steps) < 1 or args.chains < 21:
            parser.error("--steps must be >= 1, and --chains more than 20 (fewer leave PSIS k-hat undefined)")
        content = annealed_nll(args.runs, args.reference, n_test=args.n_test, steps=steps, chains=args.chains)
        if args.out:
            Path(args.out).write_text(json.dumps(content, indent=1) + "\n")
    else:
        parser.error("give run directories to estimate, or --table FILE")
    print(annealed_table(content))
    return content


if __name__ == "__main__":
    main(sys.argv[1:])
