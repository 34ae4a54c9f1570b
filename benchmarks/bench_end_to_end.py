"""End to end: ``pyromim train toy4`` against a hand-written PyTorch loop of the same steps.

Both train the catalogue's ``toy4`` networks (2-D data and latent, one hidden
layer of 50 tanh units in encoder and decoder) with symmetric MIM for the same
number of Adam steps at the same batch size, with the same schedule (``beta``
warmed up over 3 epochs, A-MIM until then, then symmetric MIM). The pyromim
side is :func:`pyromim.experiments.run`, what ``pyromim train toy4`` calls
(process start-up and plots left out), with the main job's validation and
test parts (1000 items each) and evaluation (200 importance samples per
item, KSG, KNN); the hand-written side is a plain ``torch.nn`` /
``torch.distributions`` loop over shuffled batches with one Adam, no
validation, no checkpoints.

Reported per batch size, as medians over ``--rounds`` interleaved blocks, in
CPU time of the process by default (other processes on a shared machine
disturb it far less than wall time; ``--clock wall``); the ratio of training
to the loop is the median of each round's ratio, with their range, since the
machine's speed drifts by 10 % or more between rounds:

* training (``fit``: steps, validation each epoch, checkpoints, logging) over
  the hand-written loop, and the training steps alone over the loop;
* where a training step's time goes (loss forward, backward, optimiser and
  logging, data loading and loop), per epoch the validation pass and the
  rest (checkpoints, epoch-end logging);
* evaluation's time and its share of the whole run;
* the hand-written loss and Adam run by a bare Lightning trainer (no validation,
  checkpoints, logging or callbacks) over the loop: Lightning's own cost, the
  floor under any training through it.

    python benchmarks/bench_end_to_end.py [--steps 240] [--batches 128 1024] [--rounds 7] [--threads 1]
        [--no-compile] [--val-batch N] [--clock cpu]
"""

import argparse
import logging
import math
import statistics
import tempfile
import time
import warnings
from collections import defaultdict

import lightning.pytorch as pl
import torch
from torch import distributions as td
from torch import nn

import pyromim.experiments.runner as runner
import pyromim.metrics
from pyromim.data import toy4
from pyromim.experiments import run

WARMUP_EPOCHS = 3
STEPS_PER_EPOCH = 24  # the main job's 3000 training items at batch 128


class StepTimes(pl.Callback):
    """Splits training into per-step phases, validation and the rest of each epoch."""

    def __init__(self, clock):
        self.clock = clock
        self.total = defaultdict(float)
        self.steps = 0
        self.mark = None

    def _to(self, phase):
        now = self.clock()
        if self.mark is not None:
            self.total[phase] += now - self.mark
        self.mark = now

    def on_train_epoch_start(self, trainer, pl_module):
        self._to("epoch end (checkpoints, logging)")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._to("data loading and loop" if batch_idx else "epoch start")

    def on_before_backward(self, trainer, pl_module, loss):
        self._to("loss forward")

    def on_after_backward(self, trainer, pl_module):
        self._to("backward")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._to("optimiser, schedule, logging")
        self.steps += 1

    def on_validation_start(self, trainer, pl_module):
        self._to("epoch end (checkpoints, logging)")

    def on_validation_end(self, trainer, pl_module):
        self._to("validation")

    def on_train_end(self, trainer, pl_module):
        self._to("epoch end (checkpoints, logging)")


def pyromim_run(batch, epochs, data, clock, compile, val_batch):
    """One ``run("toy4")``: (total, fit, evaluation, per-phase totals, steps)."""
    times = {}
    recorder = StepTimes(clock)
    fit, evaluate = runner.fit, pyromim.metrics.evaluate

    def timed_fit(*args, callbacks=(), **kwargs):
        start = clock()
        try:
            return fit(*args, callbacks=[*callbacks, recorder], val_batch_size=val_batch, **kwargs)
        finally:
            times["fit"] = clock() - start

    def timed_evaluate(*args, **kwargs):
        start = clock()
        try:
            return evaluate(*args, **kwargs)
        finally:
            times["evaluation"] = clock() - start

    runner.fit, pyromim.metrics.evaluate = timed_fit, timed_evaluate
    try:
        with tempfile.TemporaryDirectory() as out:
            start = clock()
            result = run(
                "toy4",
                out_dir=out,
                data=data,
                objective="mim",
                epochs=epochs,
                batch_size=batch,
                patience=0,
                num_samples=200,
                plots=False,
                progress=False,
                compile=compile,
            )
            times["total"] = clock() - start
    finally:
        runner.fit, pyromim.metrics.evaluate = fit, evaluate
    # the evaluation hook runs inside fit
    times["fit"] -= times["evaluation"]
    assert result.fit.epochs_completed == epochs
    return times, dict(recorder.total), recorder.steps


class HandWritten(nn.Module):
    """toy4's networks in plain PyTorch: x -> 50 tanh -> (loc, scale) of z, and back."""

    def __init__(self, hidden=50, min_scale=1e-6):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 4))
        self.decoder = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 4))
        self.min_scale = min_scale

    def _gaussian(self, net, v):
        loc, raw = net(v).chunk(2, dim=-1)
        return td.Independent(td.Normal(loc, raw.exp() + self.min_scale, validate_args=False), 1)

    def loss(self, x, beta, symmetric):
        """Symmetric MIM (or A-MIM) with the one-sample log q(x), as Trace_MIM computes it."""
        zeros = x.new_zeros(x.shape[0], 2)
        prior = td.Independent(td.Normal(zeros, zeros + 1.0, validate_args=False), 1)
        half = 0.5 if symmetric else 1.0
        z = self._gaussian(self.encoder, x).rsample()
        enc = -0.5 * half * (1 + beta) * (self._gaussian(self.decoder, z).log_prob(x) + prior.log_prob(z))
        if not symmetric:
            return enc.sum()
        z_gen = prior.rsample()
        p_gen = self._gaussian(self.decoder, z_gen)
        x_gen = p_gen.rsample()
        q_gen = self._gaussian(self.encoder, x_gen)
        z_re = q_gen.rsample()
        log_qx = self._gaussian(self.decoder, z_re).log_prob(x_gen) + prior.log_prob(z_re) - q_gen.log_prob(z_re)
        dec = -0.5 * half * (p_gen.log_prob(x_gen) + prior.log_prob(z_gen) + beta * (q_gen.log_prob(z_gen) + log_qx))
        return enc.sum() + dec.sum()


def hand_written_loop(x, batch, epochs, clock):
    net = HandWritten()
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    start = clock()
    for epoch in range(epochs):
        factor = min(1.0, (epoch + 1) / WARMUP_EPOCHS)
        for rows in torch.randperm(x.shape[0]).split(batch):
            optim.zero_grad()
            loss = net.loss(x[rows], factor, factor >= 1.0) / len(rows)
            loss.backward()
            optim.step()
    return clock() - start


class Rows(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, rows):
        return self.x[torch.as_tensor(rows)]


class BareLightning(pl.LightningModule):
    """The hand-written loss and Adam in Lightning's training loop, with nothing else:
    no validation, checkpoints, logging or callbacks (Lightning's own cost per step)."""

    def __init__(self):
        super().__init__()
        self.net = HandWritten()

    def training_step(self, x, batch_idx):
        factor = min(1.0, (self.current_epoch + 1) / WARMUP_EPOCHS)
        return self.net.loss(x, factor, factor >= 1.0) / len(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def bare_lightning_loop(x, batch, epochs, clock):
    """The hand-written loop's steps in a bare Lightning trainer (set-up left out)."""
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    batches = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(len(x))), batch, drop_last=False)
    # a batch at a time, by one indexing operation (as pyromim's loader fetches a tensor's rows)
    loader = torch.utils.data.DataLoader(Rows(x), sampler=batches, batch_size=None)
    times = {}

    class Clock(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            times["start"] = clock()

        def on_train_end(self, trainer, pl_module):
            times["end"] = clock()

    trainer.callbacks.append(Clock())
    trainer.fit(BareLightning(), loader)
    return times["end"] - times["start"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=240, help="training steps (a multiple of 24)")
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-compile", action="store_true", help="pyromim with the Python loss")
    parser.add_argument("--val-batch", type=int, help="validation batch size (default: the training batch size)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time, or wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    epochs = max(1, args.steps // STEPS_PER_EPOCH)
    print(
        f"toy4, symmetric MIM ({WARMUP_EPOCHS} warm-up epochs), {epochs} epochs x {STEPS_PER_EPOCH} steps, "
        f"validation and test 1000 items, {args.threads} thread(s), {args.clock} clock, "
        f"{'Python' if args.no_compile else 'compiled'} loss, validation batch {args.val_batch or 'as training'}; "
        f"medians of {args.rounds} interleaved rounds"
    )
    for batch in args.batches:
        data = toy4(n_train=STEPS_PER_EPOCH * batch, n_val=1000, n_test=1000, seed=0)
        rows = defaultdict(list)
        ratios = []  # each round's fit over the loop run right after it
        for _ in range(args.rounds):
            times, phases, steps = pyromim_run(batch, epochs, data, clock, not args.no_compile, args.val_batch)
            assert steps == epochs * STEPS_PER_EPOCH, steps
            loop = hand_written_loop(data.train.x, batch, epochs, clock)
            rows["loop"].append(loop)
            ratios.append(times["fit"] / loop)
            rows["bare Lightning"].append(bare_lightning_loop(data.train.x, batch, epochs, clock))
            for key, value in {**times, **phases}.items():
                rows[key].append(value)
        m = {key: statistics.median(values) for key, values in rows.items()}
        step_phases = ("loss forward", "backward", "optimiser, schedule, logging", "data loading and loop")
        steps_only = sum(m.get(key, 0.0) for key in step_phases)
        n_steps = epochs * STEPS_PER_EPOCH
        print(f"\nbatch {batch}: {n_steps} steps")
        print(f"  hand-written loop        {m['loop']:7.2f} s  ({m['loop'] / n_steps * 1e3:.2f} ms/step)")
        bare = m["bare Lightning"]
        print(f"  the same in bare Lightning {bare:5.2f} s  {bare / m['loop']:5.2f}x the loop (Lightning's own cost)")
        print(
            f"  pyromim training (fit)   {m['fit']:7.2f} s  {statistics.median(ratios):5.2f}x the loop "
            f"(median of the rounds' ratios; {min(ratios):.2f}x to {max(ratios):.2f}x)"
        )
        print(f"    training steps alone   {steps_only:7.2f} s  {steps_only / m['loop']:5.2f}x the loop")
        phases = (*step_phases, "epoch start", "validation", "epoch end (checkpoints, logging)")
        m["set-up (trainer, first call)"] = m["fit"] - sum(m.get(key, 0.0) for key in phases)
        for key in (*phases, "set-up (trainer, first call)"):
            if key in m:
                print(f"    {key:32s} {m[key]:6.2f} s  {m[key] / m['fit'] * 100:5.1f} % of fit")
        print(
            f"  evaluation               {m['evaluation']:7.2f} s  {m['evaluation'] / m['total'] * 100:5.1f} % of the run"
        )
        other = m["total"] - m["fit"] - m["evaluation"]
        print(f"  rest of the run          {other:7.2f} s  (data, model file, run.json)")
        print(f"  whole run                {m['total']:7.2f} s")
        if not math.isfinite(m["total"]):
            raise SystemExit("non-finite timing")


if __name__ == "__main__":
    main()
