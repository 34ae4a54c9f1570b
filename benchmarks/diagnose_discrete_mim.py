#!/usr/bin/env python
"""Why does symmetric MIM lose its code on binary data? Training curves and gradient noise.

Trains the catalogue's digits models (binarised 8x8 digits, 8-D latent,
Bernoulli decoder) with a plain ``SVI`` loop under several objectives and
decoder-side gradient estimators, and records per epoch:

* the loss terms of both sides (``log p(x|z)``, ``log p(z)``, ``log q(z|x)``,
  ``log q(x)`` estimates), averaged per datum;
* active units on the validation part and *generated-data consistency*: the
  fraction of latent variance the encoder's mean recovers from model samples,
  ``1 - E||z - mu(x)||^2 / E||z - E z||^2`` with ``z ~ p(z)``, ``x ~ p(x|z)``;
* at chosen epochs, the signal-to-noise ratio of the gradient estimate per
  parameter group (encoder, decoder, prior): ``||mean g||^2 / E||g - mean g||^2``
  over ``--snr-draws`` independent estimates on one fixed batch.

    python benchmarks/diagnose_discrete_mim.py --configs mim-score,mim-detach --epochs 60
    python benchmarks/diagnose_discrete_mim.py --spec digits_vampprior --out diag_vampprior.json

Results go to a JSON file (``--out``) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyromim import Trace_MIM
from pyromim.data import load_data
from pyromim.metrics import active_units, evaluate
from pyromim.models import build_model

#: name -> (objective, Trace_MIM keyword arguments)
CONFIGS = {
    "elbo": ("elbo", {}),
    "amim": ("amim", {}),
    "mim-score": ("mim", {"decoder_gradient": "score"}),
    "mim-score-p8": ("mim", {"decoder_gradient": "score", "num_particles": 8, "vectorize_particles": True}),
    "mim-detach": ("mim", {"decoder_gradient": "detach"}),
}


def make_loss(name: str):
    objective, options = CONFIGS[name]
    options = dict(options)
    if objective == "elbo":
        return Trace_ELBO()
    return Trace_MIM(symmetric=objective == "mim", **options)


def param_groups(lvm) -> dict[str, list[torch.Tensor]]:
    groups: dict[str, list[torch.Tensor]] = {"encoder": [], "decoder": [], "prior": []}
    for name, p in lvm.named_parameters():
        key = (
            "encoder"
            if name.startswith(("encoder", "conditional_encoder"))
            else ("prior" if name.startswith(("prior", "conditional_prior")) else "decoder")
        )
        groups[key].append(p)
    return {k: v for k, v in groups.items() if v}


def term_means(loss, lvm, x) -> dict[str, float]:
    """Per-datum mean of each labelled log-density term of a Trace_MIM loss."""
    if not isinstance(loss, Trace_MIM):
        return {}
    out: dict[str, float] = {}
    with torch.no_grad():
        traces = next(loss._get_traces(lvm.model, lvm.guide, (x,), {}))
        for side in loss._sides(traces, loss.beta):
            for label, log_prob in side.terms:
                n = log_prob.numel() if log_prob.dim() else 1
                key = f"{side.name}: {label}"
                out[key] = out.get(key, 0.0) + float(log_prob.sum()) / max(n, 1)
    return out


@torch.no_grad()
def consistency(lvm, n: int = 2000) -> float:
    z = lvm.sample_latent(n)
    x = lvm.decode(z).sample()
    mu, _ = lvm.posterior(x)
    return float(1 - ((z - mu) ** 2).sum() / ((z - z.mean(0)) ** 2).sum())


def gradient_snr(loss, lvm, x, draws: int) -> dict[str, float]:
    groups = param_groups(lvm)
    samples: dict[str, list[torch.Tensor]] = {k: [] for k in groups}
    saved = dict(getattr(loss, "baselines", {}))
    for _ in range(draws):
        lvm.zero_grad(set_to_none=True)
        surrogate = loss.differentiable_loss(lvm.model, lvm.guide, x)
        if hasattr(loss, "baselines"):
            loss.baselines = dict(saved)  # the same baseline for every draw
        surrogate.backward()
        for k, params in groups.items():
            samples[k].append(
                torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
            )
    lvm.zero_grad(set_to_none=True)
    out = {}
    for k, gs in samples.items():
        g = torch.stack(gs)
        mean = g.mean(0)
        noise = ((g - mean) ** 2).sum(1).mean()
        out[k] = float(mean.pow(2).sum() / noise.clamp_min(1e-30))
    return out


def train(
    spec: str,
    config: str,
    seed: int,
    epochs: int,
    warmup: int,
    snr_epochs: set[int],
    snr_draws: int,
    evaluate_samples: int,
    pseudo_inputs_from_data: bool = False,
    encoder_scales: bool = False,
) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    lvm = build_model(spec)
    splits = load_data("digits", seed=seed)
    train_x, val_x = splits.train.x, splits.val.x
    if encoder_scales:
        lvm.prior.component_scale = "encoder"  # Tomczak & Welling's components: the encoder's scales
    if pseudo_inputs_from_data:
        pseudo = lvm.prior.pseudo_inputs
        chosen = train_x[torch.randperm(len(train_x))[: pseudo.shape[0]]]
        pseudo.data.copy_(lvm.likelihood.encoder_input(chosen).reshape(pseudo.shape))
    loss = make_loss(config)
    target_symmetric = getattr(loss, "symmetric", False)
    svi = SVI(lvm.model, lvm.guide, Adam({"lr": 1e-3}), loss)
    probe = train_x[:128]
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        beta = min(1.0, (epoch + 1) / warmup)
        if isinstance(loss, Trace_MIM):
            loss.beta = beta
            loss.symmetric = target_symmetric and beta >= 1.0
        total = 0.0
        for batch in train_x[torch.randperm(len(train_x))].split(128):
            total += svi.step(batch)
        lvm.eval()
        row = {
            "epoch": epoch + 1,
            "loss_per_datum": total / len(train_x),
            "active_units": active_units(lvm.guide, val_x).num_active,
            "consistency": consistency(lvm),
            "terms": term_means(loss, lvm, probe),
        }
        if epoch + 1 in snr_epochs:
            row["snr"] = gradient_snr(loss, lvm, probe, snr_draws)
        lvm.train()
        history.append(row)
    seconds = time.perf_counter() - start
    lvm.eval()
    metrics = evaluate(
        lvm.model,
        lvm.guide,
        splits.test.x,
        splits.test.labels,
        train_x,
        splits.train.labels,
        num_samples=evaluate_samples,
    )
    metrics["consistency"] = consistency(lvm, 5000)
    return {
        "spec": spec,
        "config": config,
        "seed": seed,
        "epochs": epochs,
        "seconds": seconds,
        "metrics": metrics,
        "history": history,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="digits_normal")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--snr-epochs", default="", help="comma-separated epochs at which to measure gradient SNR")
    parser.add_argument("--snr-draws", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=500, help="importance samples for the test NLL")
    parser.add_argument(
        "--pseudo-inputs-from-data",
        action="store_true",
        help="VampPrior: start the pseudo-inputs at random training items",
    )
    parser.add_argument(
        "--encoder-scales",
        action="store_true",
        help="VampPrior: components with the encoder's scales (the original VampPrior) instead of learned ones",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    snr_epochs = {int(e) for e in args.snr_epochs.split(",") if e}
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for config in args.configs.split(","):
            r = train(
                args.spec,
                config,
                seed,
                args.epochs,
                args.warmup,
                snr_epochs,
                args.snr_draws,
                args.num_samples,
                args.pseudo_inputs_from_data,
                args.encoder_scales,
            )
            results.append(r)
            m = r["metrics"]
            last = r["history"][-1]
            print(
                f"{args.spec} {config:14s} seed {seed}: nll {m['nll']:.2f} mi_agg {m['mi_aggregate']:.2f} "
                f"AU {m['active_units']} knn5 {m['knn5_accuracy']:.3f} recon {m['recon_error']:.2f} "
                f"consistency {m['consistency']:.3f} ({r['seconds']:.0f} s)",
                flush=True,
            )
            snrs = [(h["epoch"], h["snr"]) for h in r["history"] if "snr" in h]
            for epoch, snr in snrs:
                print(f"    SNR at epoch {epoch}: " + ", ".join(f"{k} {v:.3g}" for k, v in snr.items()))
            if last["terms"]:
                print("    terms at the end: " + "; ".join(f"{k} {v:.2f}" for k, v in last["terms"].items()))
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(
                        results, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o
                    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
