#!/usr/bin/env python
"""ELBO vs A-MIM vs symmetric MIM with strong decoders, sentences and images, over seeds.

Two catalogue models whose decoder can model the data without ``z``:

* ``sentences_gru``: the built-in synthetic sentences (10 topics x 4 styles,
  exact likelihood), a bi-GRU encoder and a GRU language model conditioned on a
  16-D code, the encoder's scales floored at 0.3; 10 epochs on 10,000 sentences
  (validation 1,000, test 500), as in the objective guide's measurements.
* ``digits_pixelcnn``: binarised 8x8 digits, an MLP encoder and a gated PixelCNN
  decoder conditioned on an 8-D code; every objective capped at the same
  ``IMAGE_EPOCHS`` epochs, since a symmetric MIM step draws one image pixel by
  pixel (64 passes) and the spec's 200 epochs would take hours on a laptop.

Each is trained with the ELBO, A-MIM and symmetric MIM (the spec's warm-up and
learning-rate schedule: ``beta`` rising over 3 epochs with MIM's decoder side off
until it reaches 1, a Noam learning rate), plus one further row per model
(:data:`VARIANTS`): on both models symmetric MIM without warm-up (``beta = 1`` and
both sides from the first step, a constant learning rate), and on images A-MIM with
the encoder's scales floored at 0.15 instead of exp(-3) = 0.05 (the other image
rows' floor, the spec's when they were measured; the spec now trains A-MIM at 0.2
without warm-up, from ``--amim-no-warmup``); all are
evaluated with :func:`pyromim.metrics.evaluate`
(NLL with its PSIS k-hat share, refitted per datum where the guide's share is
over 0.3; aggregate MI; active units; KNN-5; reconstruction; rate; code gap).
Two more measurements per run:

* ``step_cost``: the median seconds of one training step with the run's
  objective over that with the ELBO, both taken in turn in the run's own
  process on the trained model and a training batch (a ratio measured in one
  process, so the machine's load mostly cancels);
* for sentences, the generative model's validity: ``prior_draw_nll`` is the
  *generator's* exact NLL of sentences the model decodes from prior draws
  (``z ~ p(z)``, ``x ~ p(x|z)``), over those the generator can produce at all,
  and ``prior_draw_support`` is that share (the generator's own sentences score
  its entropy, about 38 nats, with support 1).

An NLL whose k-hat share is above 0.3 for any seed is marked invalid in the table.

    python -m paper.strong_decoders --quick
    python -m paper.strong_decoders --jobs 2 --out results/strong_decoders
    python -m paper.strong_decoders --replot results/strong_decoders/results.json

``--variants-only`` runs just the further rows, ``--no-warmup-only`` just the rows
without warm-up, and ``--floor-sweep`` just A-MIM on
sentences at scale floors 0.2 and 0.1 (:data:`FLOOR_SWEEP`), ``--encoder-side`` just
symmetric MIM with ``guide_gradient="encoder_side"`` and the ELBO (and on sentences
A-MIM), all without warm-up (:data:`ENCODER_SIDE`), ``--amim-no-warmup`` just A-MIM on
digits without warm-up (:data:`AMIM_NO_WARMUP`), ``--score-baselines`` just symmetric MIM on
sentences with the score gradient through the decoder's draws (:data:`SCORE_BASELINES`), each
for a results file
of its own: ``--replot`` reads one file; join the files' ``runs`` lists to table
them together.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from paper.sweep import run_label, summarise_sweep, sweep_cli, sweep_table
from pyromim.metrics.likelihood import UNRELIABLE_FRACTION

EXPERIMENT = "strong_decoders"
SPECS = ("sentences_gru", "digits_pixelcnn")
OBJECTIVES = ("elbo", "amim", "mim")
#: symmetric MIM trained without the spec's warm-up: ``beta = 1`` and the decoder side on
#: from the first step, at a constant learning rate (what a plain ``SVI`` loop does)
NO_WARMUP = {"variant": "no warm-up", "warmup_epochs": 0, "lr_schedule": "constant"}
#: A-MIM with the encoder's standard deviation floored at 0.15 instead of exp(-3)
FLOOR_015 = {"variant": "scale floor 0.15", "min_scale": 0.15}
#: each model's further rows: ``(objective, task changes, run-name suffix)``
VARIANTS = {
    "sentences_gru": (("mim", NO_WARMUP, "nowarmup"),),
    "digits_pixelcnn": (("amim", FLOOR_015, "floor015"), ("mim", NO_WARMUP, "nowarmup")),
}
#: A-MIM on sentences with lower scale floors (more room in the code), the likelihood from 1000
#: importance samples: with 100, the PSIS k-hat of a refitted proposal is itself too noisy to judge by
FLOOR_SWEEP = {
    "sentences_gru": tuple(
        ("amim", {"variant": f"scale floor {floor}, 1000 samples", "min_scale": floor, "num_samples": 1000}, suffix)
        for floor, suffix in ((0.2, "floor02"), (0.1, "floor01"))
    ),
}
#: symmetric MIM with its guide trained by the encoder side alone (``guide_gradient="encoder_side"``),
#: and the ELBO and A-MIM trained the same way as it (no warm-up, a constant learning rate): with the
#: spec's Noam schedule the ELBO's likelihood is about 1.5 nats worse, so rows without warm-up are
#: compared with these
ENCODER_SIDE = {
    "sentences_gru": tuple((objective, NO_WARMUP, "nowarmup") for objective in ("elbo", "amim", "mim_encoder_side")),
    "digits_pixelcnn": (
        ("elbo", NO_WARMUP, "nowarmup"),
        # the symmetric loss that early stopping watches is not what this guide descends: with the
        # spec's patience of 3 the runs stopped after 4-6 epochs (40-60 steps)
        ("mim_encoder_side", {**NO_WARMUP, "variant": "no warm-up, no early stopping", "patience": 0}, "nostop"),
    ),
}
#: A-MIM on digits without warm-up, at the floor of the committed rows, at 0.15, and at 0.2 (the
#: catalogue's now) and 0.3, to set against the ELBO trained the same way (:data:`ENCODER_SIDE`'s digits row)
AMIM_NO_WARMUP = {
    "digits_pixelcnn": (
        ("amim", NO_WARMUP, "nowarmup"),
        *(
            ("amim", {**NO_WARMUP, "variant": f"no warm-up, scale floor {floor}", "min_scale": floor}, suffix)
            for floor, suffix in ((0.15, "nowarmup_floor015"), (0.2, "nowarmup_floor02"), (0.3, "nowarmup_floor03"))
        ),
    ),
}
#: symmetric MIM with its guide trained by the encoder side alone on digits at the catalogue's floor of
#: 0.2 (:data:`ENCODER_SIDE`'s digits row is at exp(-3)), no warm-up, no early stopping
ENCODER_SIDE_FLOOR = {
    "digits_pixelcnn": (
        (
            "mim_encoder_side",
            {**NO_WARMUP, "variant": "no warm-up, no early stopping, scale floor 0.2", "patience": 0, "min_scale": 0.2},
            "nostop_floor02",
        ),
    ),
}
#: symmetric MIM on sentences with the unbiased score gradient through the decoder's draws, with the
#: running-mean baseline and with leave-one-out baselines, no warm-up (set against ENCODER_SIDE's rows)
SCORE_BASELINES = {
    "sentences_gru": tuple((objective, NO_WARMUP, "nowarmup") for objective in ("mim_score", "mim_score_loo")),
}
#: the flags that run only their own rows (the first one given wins), in that order
ONLY_ROWS = {
    "floor_sweep": FLOOR_SWEEP,
    "encoder_side_floor": ENCODER_SIDE_FLOOR,
    "encoder_side": ENCODER_SIDE,
    "score_baselines": SCORE_BASELINES,
    "amim_no_warmup": AMIM_NO_WARMUP,
}
#: the epoch cap of the image runs (every objective alike)
IMAGE_EPOCHS = 20
#: per-spec caps and importance samples (the sentence settings are the objective guide's)
SETTINGS = {
    # with the training settings the committed rows were measured at (the spec's then; the catalogue
    # now trains A-MIM without warm-up for 30 epochs)
    "sentences_gru": {
        "epochs": 10,
        "n_train": 10_000,
        "n_val": 1_000,
        "n_test": 500,
        "num_samples": 100,
        "warmup_epochs": 3,
        "lr_schedule": "noam",
        "patience": 3,
    },
    # the floor, warm-up and schedule the committed rows were measured at (the spec's then; the
    # catalogue now trains A-MIM at 0.2 without warm-up)
    "digits_pixelcnn": {
        "epochs": IMAGE_EPOCHS,
        "num_samples": 200,
        "min_scale": math.exp(-3),
        "warmup_epochs": 3,
        "lr_schedule": "noam",
        "patience": 3,
    },
}
QUICK = {"epochs": 1, "n_train": 200, "n_val": 50, "n_test": 50, "num_samples": 5}
METRICS = (
    "nll",
    "psis_khat_bad_fraction",
    "mi_aggregate",
    "active_units",
    "knn5_accuracy",
    "recon_error",
    "rate",
    "code_gap",
    "step_cost",
    "prior_draw_nll",
    "prior_draw_support",
)
#: prior draws scored by the sentence generator
PRIOR_DRAWS = 1000


def build_tasks(args, out):
    specs = args.settings.split(",") if args.settings else SPECS
    unknown = sorted(set(specs) - set(SPECS))
    if unknown:
        raise SystemExit(f"--settings: unknown model(s) {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    seeds = range(1, 1 + (args.seeds or (1 if args.quick else 3)))

    only_flag = next((flag for flag in ONLY_ROWS if flag in args.flags), None)
    only = ONLY_ROWS[only_flag] if only_flag else None
    if only is not None and not set(specs) & set(only):
        raise SystemExit(
            f"--{only_flag.replace('_', '-')} has rows for {', '.join(only)} only, not for {', '.join(specs)}: "
            f"pass --settings {','.join(only)} or leave --settings out"
        )

    def configurations(spec):
        if only is not None:
            plain, further = [], only.get(spec, ())
        elif "no_warmup_only" in args.flags:
            plain, further = [], tuple(v for v in VARIANTS[spec] if v[2] == "nowarmup")
        else:
            plain = [] if "variants_only" in args.flags else [(o, {}, "") for o in OBJECTIVES]
            further = VARIANTS[spec]
        return plain + [(o, changes, f"_{suffix}") for o, changes, suffix in further]

    return [
        {
            "spec": spec,
            "objective": objective,
            "seed": seed,
            "measure": "evaluate",
            "extra": "paper.strong_decoders:extra_metrics",
            "plots": False,
            **(QUICK if args.quick else SETTINGS[spec]),
            **changes,
            "run_dir": str(out / "runs" / f"{spec}_{objective}{suffix}_seed{seed}"),
        }
        for seed in seeds
        for spec in specs
        for objective, changes, suffix in configurations(spec)
    ]


def step_seconds(model: Any, batch: Any, objectives: Sequence[str], *, rounds: int = 20, budget: float = 60.0) -> dict:
    """Median seconds of one ``SVI`` step per objective, the objectives' steps taken in turn.

    Each objective first takes two untimed steps (compilation, first-step checks);
    then rounds of one step each run until ``rounds`` rounds or ``budget`` seconds
    (at least three rounds). The steps train ``model``: call it after measuring it.
    """
    import pyro
    from pyro.infer import SVI

    from pyromim.experiments import make_loss

    svis = {o: SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-5}), make_loss(o, model)) for o in objectives}
    for svi in svis.values():
        svi.step(batch)
        svi.step(batch)
    times: dict[str, list[float]] = {o: [] for o in objectives}
    start = time.perf_counter()
    while len(times[objectives[0]]) < 3 or (
        len(times[objectives[0]]) < rounds and time.perf_counter() - start < budget
    ):
        for objective, svi in svis.items():
            t = time.perf_counter()
            svi.step(batch)
            times[objective].append(time.perf_counter() - t)
    return {o: statistics.median(ts) for o, ts in times.items()}


def generator_scores(generator: Any, tokens: Any) -> tuple[float, float]:
    """``(mean NLL of the sentences the generator can produce, their share)`` for token rows.

    A row the generator cannot produce (no ``<eos>``, tokens after it other than
    ``<pad>``, ids outside its vocabulary, or a word of the wrong kind in a slot)
    counts against the share and not in the mean; the mean is ``nan`` when no row
    is on the support.
    """
    import torch

    x = tokens.long()
    well_formed = generator.well_formed(x)
    log_p = torch.full((len(x),), -math.inf, dtype=torch.float64)
    if bool(well_formed.any()):
        log_p[well_formed] = generator.log_prob(x[well_formed])
    on_support = torch.isfinite(log_p)
    share = float(on_support.double().mean())
    nll = float(-log_p[on_support].mean()) if bool(on_support.any()) else math.nan
    return nll, share


def extra_metrics(result: Any, task: Mapping[str, Any]) -> dict[str, float]:
    """``step_cost`` and, on the built-in sentences, ``prior_draw_nll`` / ``prior_draw_support``
    (see the module docstring); called by :func:`paper.sweep.measure` after the run is evaluated."""
    import pyro
    import torch

    from pyromim.data import SentenceGenerator

    out: dict[str, float] = {}
    model = result.model
    if result.spec.data.dataset == "sentences":
        # the seed's own stream, so that the draws do not depend on the order of measurements
        pyro.set_rng_seed(int(task["seed"]))
        with torch.no_grad():
            tokens = model.sample(PRIOR_DRAWS)
        out["prior_draw_nll"], out["prior_draw_support"] = generator_scores(SentenceGenerator(), tokens)
    batch = result.data.train.x[: result.spec.training.batch_size]
    objective = result.objective
    seconds = step_seconds(model, batch, ("elbo",) if objective == "elbo" else ("elbo", objective))
    out["step_cost"] = seconds[objective] / seconds["elbo"]
    out["step_seconds"] = seconds[objective]
    return out


def _cell(stats: Mapping[str, tuple[float, float, int]], metric: str, digits: int = 2) -> str:
    mean, std, n = stats[metric]
    if n == 0 or math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_order(summary: Mapping[tuple[Any, str], Any]) -> list[tuple[Any, str]]:
    """The ``(variant, objective label)`` keys of a :func:`paper.sweep.summarise_sweep` summary
    in table order: ELBO, A-MIM, MIM (then MIM with the score gradient, and with its guide from
    the encoder side), the plain rows first, then the variants by name."""
    order = [run_label(o) for o in (*OBJECTIVES, "mim_score", "mim_score_loo", "mim_encoder_side")]
    return sorted(summary, key=lambda k: (k[0] is not None, str(k[0]), order.index(k[1])))


def strong_rows(runs: Sequence[Mapping[str, Any]], spec: str) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of ``spec``'s table: one row per objective (ELBO, A-MIM, MIM, then
    MIM's variants), mean ± sd over the seeds that finished, an NLL marked invalid when any
    seed's k-hat share is over
    :data:`pyromim.metrics.likelihood.UNRELIABLE_FRACTION`; no rows when ``spec`` has no finished run."""
    mine = [r for r in runs if r["spec"] == spec and isinstance(r.get("metrics"), Mapping)]
    summary = summarise_sweep(mine, "variant", METRICS)
    worst: dict[tuple[Any, str], float] = {}
    for r in mine:
        key = (r.get("variant"), run_label(r["objective"]))
        worst[key] = max(worst.get(key, 0.0), r["metrics"].get("psis_khat_bad_fraction", math.inf))
    text = spec == "sentences_gru"
    header = ["objective", "seeds", "NLL (k-hat share, worst seed)", "aggregate MI", "active units", "KNN-5"]
    header += ["wrong tokens of 16" if text else "reconstruction error", "rate", "code gap", "step cost vs ELBO"]
    if text:
        header += ["generator's NLL of prior draws", "their share on its support"]
    rows = []
    for variant, label in table_order(summary):
        stats = summary[variant, label]
        nll = f"{_cell(stats, 'nll')} ({worst[variant, label]:.2f})"
        if worst[variant, label] > UNRELIABLE_FRACTION:
            nll += " **invalid**"
        cells = [label + (f", {variant}" if variant else ""), str(stats["nll"][2]), nll]
        cells += [_cell(stats, "mi_aggregate"), _cell(stats, "active_units", 1), _cell(stats, "knn5_accuracy")]
        cells += [
            _cell(stats, "recon_error"),
            _cell(stats, "rate"),
            _cell(stats, "code_gap"),
            _cell(stats, "step_cost"),
        ]
        if text:
            cells += [_cell(stats, "prior_draw_nll"), _cell(stats, "prior_draw_support")]
        rows.append(cells)
    return header, rows


def strong_table(runs: Sequence[Mapping[str, Any]], spec: str) -> str:
    """``spec``'s rows of :func:`strong_rows` as a Markdown table (empty without finished runs)."""
    header, rows = strong_rows(runs, spec)
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


#: the columns of :func:`strong_rows` that the objective guide's summary quotes
GUIDE_COLUMNS = (0, 2, 3, 4, 5, 9)


def guide_rows(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The objective guide's summary, one ``csv-table`` line per model and objective:
    model, objective, NLL (k-hat share), aggregate MI, active units, KNN-5, step cost."""
    lines = []
    for spec in SPECS:
        for cells in strong_rows(runs, spec)[1]:
            chosen = [f"{spec}, {cells[0]}"] + [cells[i] for i in GUIDE_COLUMNS[1:]]
            lines.append(", ".join('"' + c.replace("**", "") + '"' for c in chosen))
    return lines


def report(results, out):
    runs = results["runs"]
    lines = []
    for spec in SPECS:
        table = strong_table(runs, spec)
        if table:
            lines += [f"### {spec}", "", table, ""]
    failed = [r for r in runs if "error" in r]
    if failed:
        lines.append(f"{len(failed)} run(s) failed: " + "; ".join(f"{r['run_dir']}: {r['error']}" for r in failed))
    lines += ["The objective guide's summary (csv-table rows):", "", *guide_rows(runs), ""]
    lines.append("All metrics, mean ± sd over seeds:")
    lines.append("")
    named = [{**r, "model": r["spec"] + (f" ({r['variant']})" if r.get("variant") else "")} for r in runs]
    lines.append(sweep_table(summarise_sweep(named, "model", METRICS), "model", METRICS))
    return "\n".join(lines)


if __name__ == "__main__":
    flags = {
        "--variants-only": "run only the further rows (MIM without warm-up, A-MIM with a higher floor)",
        "--no-warmup-only": "run only symmetric MIM without warm-up (each model's no-warm-up row)",
        "--floor-sweep": "run only A-MIM on sentences at scale floors 0.2 and 0.1 (1000 importance samples)",
        "--encoder-side": "run only MIM with guide_gradient='encoder_side' and the ELBO (and on sentences A-MIM), "
        "all without warm-up",
        "--encoder-side-floor": "run only MIM with guide_gradient='encoder_side' on digits at the floor 0.2, "
        "without warm-up or early stopping",
        "--amim-no-warmup": "run only A-MIM on digits without warm-up, at the floors exp(-3), 0.15, 0.2 and 0.3",
        "--score-baselines": "run only MIM on sentences with the score gradient (running-mean and leave-one-out "
        "baselines), without warm-up",
    }
    sys.exit(sweep_cli(EXPERIMENT, build_tasks, report, description=__doc__, flags=flags))
