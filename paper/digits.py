#!/usr/bin/env python
"""VAE vs A-MIM vs symmetric MIM on scikit-learn's 8x8 digits, with three priors.

The catalogue specs ``digits_normal`` (standard-normal prior),
``digits_mixture`` (learned 10-component Gaussian mixture) and
``digits_vampprior`` (VampPrior, 50 pseudo-inputs) share an 8-D latent, 128
tanh units and a Bernoulli decoder over binarised pixels. Each is trained with
the ELBO, A-MIM and symmetric MIM (reference training settings, several seeds)
and evaluated on the test split with :func:`pyromim.metrics.evaluate`
(importance-sampled NLL, KSG and aggregate MI, active units, KNN-5 accuracy,
reconstruction error) plus ``H_q(x)``. The paper's image experiments (MNIST and
relatives with hierarchical VampPrior models) are larger; this is their small,
laptop-sized counterpart: expect MIM and A-MIM to trade some NLL for higher
mutual information, better KNN-5 accuracy and lower reconstruction error.

    python -m paper.digits --quick
    python -m paper.digits --jobs 16 --out results/digits
    python -m paper.digits --replot results/digits/results.json
"""

import sys

from paper.sweep import run_label, saved_run_dir, seed_major, summarise_sweep, sweep_cli, sweep_table

EXPERIMENT = "digits"
SPECS = ("digits_normal", "digits_mixture", "digits_vampprior")
OBJECTIVES = ("elbo", "amim", "mim", "mim_score")
#: ``--encoder-side``: symmetric MIM whose guide learns from the encoder side alone, without early
#: stopping (its validation loss is the symmetric loss, which the guide no longer descends)
ENCODER_SIDE = "mim_encoder_side"
METRICS = ("nll", "mi_ksg", "mi_aggregate", "active_units", "knn5_accuracy", "recon_error", "consistency", "h_q_x")


def build_tasks(args, out):
    specs = args.settings.split(",") if args.settings else (SPECS[:1] if args.quick else SPECS)
    seeds = range(1, 1 + (args.seeds or (1 if args.quick else 3)))
    caps = {"epochs": 2, "n_train": 300, "n_val": 100, "n_test": 200} if args.quick else {}
    encoder_side = "encoder_side" in args.flags
    objectives = (ENCODER_SIDE,) if encoder_side else OBJECTIVES
    return [
        {
            "spec": spec,
            "objective": objective,
            "seed": seed,
            **({"patience": 0} if encoder_side else {}),
            "measure": "evaluate",
            "num_samples": 50 if args.quick else 1000,
            "plots": seed == 1,
            **caps,
            "run_dir": str(out / "runs" / f"{spec}_{objective}_seed{seed}"),
        }
        for spec, objective, seed in seed_major(specs, objectives, seeds)
    ]


def report(results, out):
    from pyromim.data import load_data
    from pyromim.models import load_model
    from pyromim.plots import plot_image_model_rows

    summary = summarise_sweep(results["runs"], None, METRICS)
    lines = ["### digits", "", sweep_table(summary, "spec", METRICS), ""]
    failed = [r for r in results["runs"] if "error" in r]
    if failed:
        lines.append(f"{len(failed)} run(s) failed: " + "; ".join(r["error"] for r in failed))
    figures = []
    for spec in SPECS:
        runs = [r for r in results["runs"] if r["spec"] == spec and r["seed"] == 1 and "metrics" in r]
        paths = {
            run_label(r["objective"]): saved_run_dir(r, out) / "model.pt"
            for r in sorted(runs, key=lambda r: (*OBJECTIVES, ENCODER_SIDE).index(r["objective"]))
        }
        if not paths or not all(p.exists() for p in paths.values()):
            continue
        test = load_data("digits", seed=1).test
        models = {label: load_model(p) for label, p in paths.items()}
        figures.append(
            plot_image_model_rows(
                models, test.x, test.labels, (8, 8), out / f"{spec}.png", title=f"{spec}, seed 1"
            ).name
        )
    lines.append("Figures: " + (", ".join(figures) or "none (the runs' model.pt files are not here)"))
    return "\n".join(lines)


if __name__ == "__main__":
    flags = {"--encoder-side": "run only MIM with guide_gradient='encoder_side' (no early stopping)"}
    sys.exit(sweep_cli(EXPERIMENT, build_tasks, report, description=__doc__, flags=flags))
