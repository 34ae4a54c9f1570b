#!/usr/bin/env python
"""Which terms of symmetric MIM pull a strong decoder's code towards collapse.

The catalogue's ``sentences_gru`` model (bi-GRU encoder, GRU language-model
decoder, 16-D code; encoder scales floored at ``--min-scale``, default 0.001) is trained on the built-in synthetic sentences with plain
``SVI`` and ``Trace_MIM()`` (no warm-up). At checkpoints along that run each
term of the loss (:func:`pyromim.infer.terms.loss_terms`) is differentiated
apart, over ``--repeats`` minibatches and draws at the same weights, and three
things are measured per term:

* ``snr``: the per-step gradient signal-to-noise ratio over all of a network's
  weights, ``|mean g| / sqrt(mean |g - mean g|^2)``;
* ``info pull`` (encoder weights): the code's information on a fixed probe
  batch, taken as a Gaussian channel's, ``sum_d 1/2 log(1 + Var_x mu_d(x) /
  E_x sigma_d(x)^2)`` (0 when every sentence gets the same code; unlike the rate
  ``E_x KL(q(z|x) || p(z))`` it does not grow when scales shrink around a common
  mean), changes by ``lr * pull`` to first order when plain gradient descent
  follows the term (``pull = -<g, grad info>``, per sentence of the batch);
  negative pulls the code towards collapse;
* ``code pull`` (decoder weights): the same for the decoder's ``code gap``,
  ``E_x [log p(x | mu(x)) - log p(x | z~p(z))]`` on the probe batch, how much
  better the decoder explains a sentence from its own code than from a prior
  draw; negative teaches the decoder to ignore ``z``.

Pulls are given with their standard error over the repeats, so a sign can be
trusted when it is a few standard errors from 0.

The decoder side's own log-likelihood at its draws is measured under both
decoder gradients: ``detach`` (the default: its pathwise gradient, whose
expectation is 0 for the decoder's weights, so it can only add noise) and
``score`` (its score-function term, with the running-mean baseline of training
when the run used it) and ``score`` with leave-one-out baselines (each draw's
baseline the mean cost of the batch's other draws, ``[leave-one-out]``), that
term also split by the decoder-side terms that weight it
(:func:`~pyromim.infer.loss_terms` with ``split_scores``: ``..., cost: <term>``). ``total``
rows are whole objectives: MIM with each decoder gradient and, for comparison, the ELBO.

Pulls are first-order effects of *plain gradient steps*; Adam rescales each
weight, so they say which way a term pushes, not how far a training step goes.
``adam_pull`` takes the term's gradient through the training run's Adam scaling
at the checkpoint, ``1 / (sqrt(v_hat) + eps)`` per weight (:func:`adam_scaling`):
the change of the code information (or gap) per unit learning rate if Adam's step
were that term's gradient alone (momentum left out). Adam divides each weight's
step by its recent gradient size, so a term whose gradient is small but steady
can move weights that plain gradient descent would hardly move. ``adam_raw_pull``
(and ``raw_pull``, plain) is the same for the mean raw scale ``r`` of the probe's
codes, ``sigma = exp(r) + floor``: while the scales sit on the floor a term's
effect on the code is first-order invisible, but its push on ``r`` is not
(positive widens the scales).

With ``--amim-steps N`` the run trains A-MIM (the decoder side off, ``beta``
1) for its first ``N`` steps and symmetric MIM after them, so the terms can be
read on a code A-MIM has formed; the measurements are always of symmetric MIM.

    python -m paper.collapse_diagnosis --quick
    python -m paper.collapse_diagnosis --out docs/paper_results/collapse_diagnosis.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from pyromim import Trace_MIM, build_model
from pyromim.data import synthetic_sentences
from pyromim.infer import loss_terms
from pyromim.specs import resolve_spec

#: checkpoints (SVI steps taken) at which the terms are measured
CHECKPOINTS = (0, 100, 400, 1200)
QUICK = {"checkpoints": (0, 5), "repeats": 3, "probe": 32, "n_train": 500}


def _flat_grad(total, params):
    grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def code_information(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``sum_d 1/2 log(1 + Var_x mu_d / E_x sigma_d^2)`` over a batch: a Gaussian channel's information."""
    return 0.5 * torch.log1p(loc.var(0) / scale.pow(2).mean(0)).sum()


def _probe_directions(model, probe, generator):
    """Gradients of the probe batch's code information and mean raw scale (encoder weights) and
    code gap (decoder weights)."""
    enc, dec = list(model.encoder.parameters()), list(model.likelihood.parameters())
    raw = []  # the scale head's pre-activation r, sigma = exp(r) + floor
    hook = model.encoder.head.linear.register_forward_hook(lambda m, i, out: raw.append(out.chunk(2, dim=-1)[1]))
    try:
        loc, scale = model.posterior(probe)
    finally:
        hook.remove()
    info = code_information(loc, scale)
    rate = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    z_prior = torch.randn(loc.shape, generator=generator)
    gap = (model.decode(loc.detach()).log_prob(probe) - model.decode(z_prior).log_prob(probe)).mean()
    mean_raw = raw[-1].mean()
    state = {
        "rate": float(rate.mean().detach()),
        "code_info": float(info.detach()),
        "code_gap": float(gap.detach()),
        "raw_scale": float(mean_raw.detach()),
    }
    return state, _flat_grad(info, enc), _flat_grad(gap, dec), _flat_grad(mean_raw, enc)


def adam_scaling(optim, params) -> torch.Tensor:
    """Adam's per-weight step scaling ``1 / (sqrt(v_hat) + eps)`` from the training optimiser's
    state (``v_hat`` its bias-corrected running mean of squared gradients), flattened like
    :func:`_flat_grad`; 1 for a weight without state (no step taken yet)."""
    parts = []
    for p in params:
        adam = getattr(optim, "optim_objs", {}).get(p)
        state = adam.state.get(p, {}) if adam is not None else {}
        if "exp_avg_sq" not in state:
            parts.append(torch.ones(p.numel()))
            continue
        beta2, eps = adam.param_groups[0]["betas"][1], adam.param_groups[0]["eps"]
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
        parts.append((1.0 / (v_hat.sqrt() + eps)).reshape(-1))
    return torch.cat(parts)


def _summary(samples: torch.Tensor, direction: torch.Tensor, batch_size: int, scaling=None, raw=None) -> dict:
    """Mean gradient's norm, its signal-to-noise ratio per step (the noise's share of the
    squared mean taken out: 0 for pure noise whatever the repeats), and the pull along
    ``direction`` per datum with its standard error; with ``scaling`` (:func:`adam_scaling`)
    also ``adam_pull``, the pull of the gradient taken through Adam's per-weight scaling; with
    ``raw`` (the gradient of the mean raw scale ``r``, ``sigma = exp(r) + floor``) the same
    for ``r`` (``raw_pull``, ``adam_raw_pull``; positive widens the encoder's scales)."""
    r = samples.shape[0]
    mean = samples.mean(0)
    noise2 = (samples - mean).pow(2).sum(-1).sum() / max(r - 1, 1)
    signal2 = max(float(mean.pow(2).sum() - noise2 / r), 0.0)
    pulls = {"pull": -(samples @ direction) / batch_size}
    if scaling is not None:
        pulls["adam_pull"] = -(samples @ (scaling * direction))
    if raw is not None:
        pulls["raw_pull"] = -(samples @ raw) / batch_size
        if scaling is not None:
            pulls["adam_raw_pull"] = -(samples @ (scaling * raw))
    summary = {"norm": float(mean.norm()), "snr": math.sqrt(signal2 / float(noise2)) if noise2 > 0 else math.inf}
    for key, values in pulls.items():
        summary[key] = float(values.mean())
        summary[f"{key}_se"] = float(values.std() / math.sqrt(r)) if r > 1 else math.nan
    return summary


def measure_terms(model, x, probe, repeats, batch_size, seed, mim_score_baselines=None, optim=None):
    """Per term (and per whole objective): encoder and decoder gradient statistics at the current
    weights (with Adam's scaling from ``optim``, the training run's optimiser, when given)."""
    enc, dec = list(model.encoder.parameters()), list(model.likelihood.parameters())
    scale_enc, scale_dec = (adam_scaling(optim, enc), adam_scaling(optim, dec)) if optim is not None else (None, None)
    generator = torch.Generator().manual_seed(seed)
    state, info_dir, gap_dir, raw_dir = _probe_directions(model, probe, generator)
    objectives = {
        "detach": Trace_MIM(),
        "score": Trace_MIM(decoder_gradient="score"),
        "score_loo": Trace_MIM(decoder_gradient="score", score_baseline="leave_one_out"),
    }
    for key, value in (mim_score_baselines or {}).items():
        objectives["score"].baselines[key] = value
    grads: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for r in range(repeats):
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        batch = x[idx]
        for name, objective in objectives.items():
            pyro.set_rng_seed(seed * 1000 + r)  # every decoder gradient sees the same draws
            total = 0.0
            # the leave-one-out score term is split by the terms that weight it (they add up to it)
            split = name == "score_loo"
            scores: dict[str, torch.Tensor] = {}
            for term in loss_terms(objective, model.model, model.guide, batch, split_scores=split):
                total = total + term.surrogate
                if name != "detach" and not term.label.startswith("score function"):
                    continue  # the other terms are the detach run's, but for the self-likelihood's pathwise part
                label = f"{term.side}: {term.label}"
                if term.label.endswith("site 'x'") and not term.label.startswith("score function"):
                    label += f" [{name}]"
                if split:
                    whole = f"{term.side}: {term.label.split(', ')[0]} [leave-one-out]"
                    scores[whole] = scores.get(whole, 0.0) + term.surrogate
                    label += " [leave-one-out]"
                if term.surrogate.requires_grad:
                    grads.setdefault(label, []).append(
                        (_flat_grad(term.surrogate, enc), _flat_grad(term.surrogate, dec))
                    )
            for label, surrogate in scores.items():
                grads.setdefault(label, []).append((_flat_grad(surrogate, enc), _flat_grad(surrogate, dec)))
            grads.setdefault(f"total: MIM [{name}]", []).append((_flat_grad(total, enc), _flat_grad(total, dec)))
        pyro.set_rng_seed(seed * 1000 + r)
        elbo = Trace_ELBO().differentiable_loss(model.model, model.guide, batch)
        grads.setdefault("total: ELBO", []).append((_flat_grad(elbo, enc), _flat_grad(elbo, dec)))
    rows = {}
    for label, pairs in grads.items():
        g_enc = torch.stack([e for e, _ in pairs])
        g_dec = torch.stack([d for _, d in pairs])
        rows[label] = {
            "encoder": _summary(g_enc, info_dir, batch_size, scale_enc, raw_dir),
            "decoder": _summary(g_dec, gap_dir, batch_size, scale_dec),
        }
    return state, rows


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    splits = synthetic_sentences(seed=args.seed, n_train=args.n_train, n_val=0, n_test=0)
    x = splits.train.x
    probe = x[: args.probe]
    spec = resolve_spec("sentences_gru")
    model = build_model(dataclasses.replace(spec, model=dataclasses.replace(spec.model, min_scale=args.min_scale)))
    objective = Trace_MIM(decoder_gradient=args.train_gradient)
    optim = pyro.optim.Adam({"lr": args.lr})
    svi = SVI(model.model, model.guide, optim, objective)
    generator = torch.Generator().manual_seed(args.seed)
    results = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "checkpoints": []}
    step, started = 0, time.perf_counter()
    for checkpoint in args.checkpoints:
        while step < checkpoint:
            objective.symmetric = step >= args.amim_steps
            svi.step(x[torch.randint(len(x), (args.batch_size,), generator=generator)])
            step += 1
        baselines = dict(objective.baselines.items()) if args.train_gradient == "score" else None
        state, rows = measure_terms(model, x, probe, args.repeats, args.batch_size, args.seed + step, baselines, optim)
        results["checkpoints"].append({"step": step, **state, "terms": rows})
        print(
            f"step {step}: rate {state['rate']:.2f}, code information {state['code_info']:.2f}, "
            f"code gap {state['code_gap']:.2f}, raw scale {state['raw_scale']:.2f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        print(table(rows), flush=True)
    return results


def table(rows: dict) -> str:
    lines = [
        "| term | encoder snr | info pull | info, Adam | raw scale, Adam | decoder snr | code pull | code, Adam |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pull(part, key):
        return f"{part[key]:+.3g} ± {part[key + '_se']:.2g}" if part["norm"] > 0 and key in part else "-"

    for label, row in rows.items():
        e, d = row["encoder"], row["decoder"]
        cells = [
            f"{e['snr']:.2f}" if e["norm"] > 0 else "-",
            pull(e, "pull"),
            pull(e, "adam_pull"),
            pull(e, "adam_raw_pull"),
            f"{d['snr']:.2f}" if d["norm"] > 0 else "-",
            pull(d, "pull"),
            pull(d, "adam_pull"),
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=list(CHECKPOINTS))
    parser.add_argument("--repeats", type=int, default=16, help="minibatches and draws per checkpoint")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--probe", type=int, default=256, help="sentences whose rate and code gap are followed")
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument(
        "--train-gradient",
        choices=("detach", "score"),
        default="detach",
        help="the decoder gradient of the training run itself",
    )
    parser.add_argument(
        "--min-scale",
        type=float,
        default=0.001,
        help="the encoder's smallest standard deviation (the published measurements: 0.001, the spec's earlier value)",
    )
    parser.add_argument(
        "--amim-steps",
        type=int,
        default=0,
        help="train A-MIM (decoder side off) for this many first steps, then symmetric MIM",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if sorted(args.checkpoints) != list(args.checkpoints) or min(args.checkpoints) < 0:
        parser.error("--checkpoints must be non-negative and increasing")
    if args.amim_steps < 0:
        parser.error(f"--amim-steps must be 0 (symmetric MIM from the first step) or more, got {args.amim_steps}")
    results = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
