#!/usr/bin/env python
"""Which of the synthetic corpus's factors the trained sentence codes hold.

The strong-decoder comparison (``python -m paper.strong_decoders``) scores the
codes by topic (``knn5_accuracy``) and by greedy reconstruction.  This reads
the trained ``sentences_gru`` models of a sweep's results file back and asks
which of the corpus's factors each code holds: its topic (10 values), its style
(4) and its length (9..15 words).  On ``--n`` fresh sentences drawn from the
generator (stream ``--seed``, disjoint from any run's data), each model's
posterior means are classified by each factor in two ways:

* ``knn5``: 5-nearest-neighbour accuracy, leave one out
  (:func:`pyromim.metrics.knn_accuracy`, as ``knn5_accuracy`` is measured);
* ``linear``: a multinomial logistic regression on the standardised means,
  5-fold cross-validated (scikit-learn).

The ``generator`` row gives the ceilings: the exact posterior's most probable
topic and style (:meth:`pyromim.data.SentenceGenerator.posterior`; the length
is read off the sentence).  The output also holds
:meth:`~pyromim.data.SentenceGenerator.factor_decode_errors`, the fewest wrong
tokens any reconstruction from a code that holds only the factors can reach.

    python -m paper.code_content docs/paper_results/strong_decoders.json --out docs/paper_results/code_content.json
    python -m paper.code_content runs/sentences_gru/amim-seed1   # one run directory
    python -m paper.code_content --table docs/paper_results/code_content.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paper.strong_decoders import table_order
from paper.sweep import summarise_sweep
from pyromim.data import SentenceGenerator
from pyromim.data.text import EOS
from pyromim.metrics import knn_accuracy

FACTORS = ("topic", "style", "length")
PROBES = tuple(f"{factor}_{how}" for factor in FACTORS for how in ("knn5", "linear"))


def factor_sentences(generator: SentenceGenerator, n: int, seed: int) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """``n`` fresh sentences and their factors ``{"topic", "style", "length"}``."""
    tokens, topic, style = generator.sample(n, seed)
    length = (tokens == EOS).int().argmax(dim=1)
    return tokens, {"topic": topic.numpy(), "style": style.numpy(), "length": length.numpy()}


def probe(codes: np.ndarray, factors: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``{factor}_knn5`` and ``{factor}_linear`` accuracies of the codes ``(N, D)`` for each factor."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for factor, labels in factors.items():
        out[f"{factor}_knn5"] = knn_accuracy(codes, labels, k=5)
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        out[f"{factor}_linear"] = float(cross_val_score(linear, codes, labels, cv=5).mean())
    return out


def generator_ceiling(generator: SentenceGenerator, tokens: torch.Tensor, factors: Mapping[str, np.ndarray]) -> dict:
    """The exact posterior's accuracy for topic and style (length is observed: 1), and the
    reconstruction floor of a factor-only code."""
    posterior = generator.posterior(tokens)  # (N, T, S)
    return {
        "topic": float(np.mean(posterior.sum(dim=2).argmax(dim=1).numpy() == factors["topic"])),
        "style": float(np.mean(posterior.sum(dim=1).argmax(dim=1).numpy() == factors["style"])),
        "length": 1.0,
        "factor_decode_errors": generator.factor_decode_errors(),
    }


def code_probes(records: Sequence[Mapping[str, Any]], *, n: int, seed: int, root: Path) -> dict[str, Any]:
    """Probe the trained models of ``records`` (a sweep's run records: ``spec``, ``objective``,
    ``variant``, ``seed`` and ``run_dir``, relative to ``root``)."""
    from pyromim.experiments.evaluation import load_run_model

    generator = SentenceGenerator()
    tokens, factors = factor_sentences(generator, n, seed)
    runs = []
    for r in records:
        model, _, _ = load_run_model(root / r["run_dir"])
        model.eval()
        with torch.no_grad():
            means, _ = model.posterior(tokens)
        keep = {k: r[k] for k in ("spec", "objective", "variant", "seed", "run_dir") if k in r}
        runs.append({**keep, "metrics": probe(means.numpy(), factors)})
        print(f"{r['run_dir']}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1]["metrics"].items()), flush=True)
    ceiling = generator_ceiling(generator, tokens, factors)
    return {"experiment": "code_content", "settings": {"n": n, "seed": seed}, "generator": ceiling, "runs": runs}


def run_records(sources: Sequence[str]) -> list[dict[str, Any]]:
    """The finished ``sentences_gru`` runs of sweep results files, and run directories given directly
    (each its own row, named by the directory)."""
    records: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise SystemExit(f"{path}: no such run directory or results file")
        if path.is_dir():
            info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
            if info.get("data") != "sentences":
                raise SystemExit(f"{path}: not a run on the built-in sentences (its run.json names no such data)")
            objective, seed = info.get("objective", "mim"), info.get("seed", 0)
            records.append(
                {
                    "spec": info.get("spec", "sentences_gru"),
                    "objective": objective,
                    "variant": path.name,
                    "seed": seed,
                    "run_dir": str(path),
                }
            )
            continue
        try:
            results = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SystemExit(f"{path}: not a sweep's results file (not JSON: {err})") from None
        if not isinstance(results, dict) or "runs" not in results:
            raise SystemExit(f"{path}: neither a run directory nor a sweep's results file (no 'runs')")
        records += [r for r in results["runs"] if r["spec"] == "sentences_gru" and "metrics" in r]
    return records


def _cell(mean: float, std: float, n: int) -> str:
    """``mean ± sd`` over seeds, the mean alone for one seed."""
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def content_table(content: Mapping[str, Any]) -> str:
    """Markdown: one row per objective (and variant), ``mean ± sd`` over seeds, then the generator's ceilings."""
    summary = summarise_sweep(content["runs"], "variant", PROBES)
    lines = [
        "| objective | " + " | ".join(f"{f} {how}" for f in FACTORS for how in ("KNN-5", "linear")) + " |",
        "|---" * (1 + len(PROBES)) + "|",
    ]
    for variant, label in table_order(summary):
        name = label if variant is None else f"{label}, {variant}"
        stats = summary[(variant, label)]
        lines.append(f"| {name} | " + " | ".join(_cell(*stats[p]) for p in PROBES) + " |")
    ceiling = content["generator"]
    cells = [f"{ceiling[f]:.2f}" for f in FACTORS for _ in ("knn5", "linear")]  # a ceiling for any classifier
    lines.append("| generator's exact posterior | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", help="strong-decoder sweep results JSONs, or run directories")
    parser.add_argument("--out", help="write the probes here (JSON)")
    parser.add_argument("--n", type=int, default=2000, help="fresh sentences to probe with (default 2000)")
    parser.add_argument("--seed", type=int, default=12345, help="their stream (default 12345)")
    parser.add_argument("--root", default=".", help="directory the results' run_dir paths are relative to")
    parser.add_argument("--table", metavar="FILE", help="print the table of a probes JSON this wrote, and stop")
    args = parser.parse_args(argv)
    if args.table:
        content = json.loads(Path(args.table).read_text())
        if "generator" not in content or "runs" not in content:
            raise SystemExit(f"{args.table}: not a probes file written by paper.code_content (no 'generator'/'runs')")
    elif args.sources:
        content = code_probes(run_records(args.sources), n=args.n, seed=args.seed, root=Path(args.root))
        if args.out:
            Path(args.out).write_text(json.dumps(content, indent=1) + "\n")
    else:
        parser.error("give results JSONs or run directories to probe, or --table FILE")
    print(content_table(content))
    print(
        f"reconstruction floor of a factor-only code: {content['generator']['factor_decode_errors']:.2f} wrong tokens"
    )
    return content


if __name__ == "__main__":
    main(sys.argv[1:])
