"""The Lightning training engine: warm-ups, schedules, checkpoints, resume, non-finite loss, DDP."""

import csv
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning.pytorch as pl
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro_pairs import Decoder, Encoder, WarmupELBO, final_parameters, make_function_pair

from pyromim import Trace_MIM
from pyromim.data import toy4
from pyromim.models import CheckpointError
from pyromim.training import (
    NoamFactor,
    NonFiniteLossError,
    TrainConfig,
    beta_factor,
    fit,
    load_checkpoint,
    load_trained,
    save_atomically,
)

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False)


@pytest.fixture(scope="module")
def data():
    return toy4(n_train=256, n_val=128, n_test=0, seed=0)


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- schedules


def test_beta_factor_closed_form():
    assert [beta_factor(e, 3) for e in (1, 2, 3, 4)] == [1 / 3, 2 / 3, 1.0, 1.0]
    assert beta_factor(1, 0) == 1.0


def test_noam_factor_closed_form():
    noam = NoamFactor(4)
    # steps taken k -> s = k + 1; min(s / 4, sqrt(4 / s))
    assert [noam(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert noam(15) == pytest.approx(math.sqrt(4 / 16))
    assert NoamFactor(0)(10) == 1.0


# ---------------------------------------------------------------- checkpoint files


class Exploding:
    def __reduce__(self):
        raise RuntimeError("boom while pickling")


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "c.ckpt"
    save_atomically({"w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="boom"):
        save_atomically({"w": torch.zeros(2), "bad": Exploding()}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt"]  # no temporary left behind


class Payload:
    pass


def test_checkpoints_never_unpickle_objects(tmp_path, data):
    model, guide = make_function_pair()
    run = fit(model, guide, Trace_ELBO(), data.train, epochs=1, batch_size=64, out_dir=tmp_path / "r", **QUIET)
    state = load_checkpoint(run.last_checkpoint)
    state["payload"] = Payload()
    torch.save(state, tmp_path / "evil.ckpt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        fit(
            model,
            guide,
            Trace_ELBO(),
            data.train,
            epochs=2,
            batch_size=64,
            out_dir=tmp_path / "r2",
            resume=tmp_path / "evil.ckpt",
            **QUIET,
        )


def _corrupt(path, how):
    """Damage a checkpoint file: flip one weight's bytes to 1.2e36, truncate it, or replace it with noise."""
    raw = bytearray(path.read_bytes())
    if how == "weight":
        weight = next(v for v in load_checkpoint(path)["state_dict"].values() if v.numel() > 1)
        original = weight.reshape(-1)[:1].numpy().tobytes()
        at = raw.index(weight.numpy().tobytes())  # the tensor's bytes are stored as they are
        raw[at : at + len(original)] = torch.tensor([1.2e36], dtype=weight.dtype).numpy().tobytes()
    elif how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "random":
        raw = bytearray(torch.randint(0, 256, (len(raw),), generator=torch.Generator().manual_seed(0)).byte().numpy())
    elif how == "object":
        state = torch.load(path, weights_only=True)
        state["payload"] = Payload()
        torch.save(state, path)
        return
    elif how == "no checksum":
        state = torch.load(path, weights_only=True)
        del state["pyromim_sha256"]
        torch.save(state, path)
        return
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["weight", "truncated", "random", "object", "no checksum"])
def test_damaged_checkpoints_are_refused_in_one_line(tmp_path, data, how):
    model, guide = make_function_pair()
    kwargs = dict(epochs=1, batch_size=64, progress=False, clear_param_store=True)
    run = fit(model, guide, Trace_ELBO(), data.train, data.val, out_dir=tmp_path / "r", **kwargs)
    for path in (run.best_checkpoint, run.last_checkpoint):
        assert load_checkpoint(path)["epoch"] == 0  # intact files load, their checksum verified
        _corrupt(path, how)
        with pytest.raises(CheckpointError, match=path.name) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value) and "train again" in str(info.value)
    with pytest.raises(CheckpointError, match="last.ckpt"):  # never resumed from
        fit(model, guide, Trace_ELBO(), data.train, out_dir=tmp_path / "r", resume=run.last_checkpoint, **kwargs)
    with pytest.raises(CheckpointError, match="best.ckpt"):  # never evaluated
        load_trained(model, guide, Trace_ELBO(), run.best_checkpoint, data.train.x[:2])


# ---------------------------------------------------------------- training


def test_fit_plain_functions_learns_and_writes_outputs(tmp_path, data):
    model, guide = make_function_pair()
    run = fit(
        model,
        guide,
        Trace_ELBO(),
        data.train,
        data.val,
        epochs=6,
        batch_size=32,
        lr=1e-2,
        warmup_epochs=1,
        seed=1,
        out_dir=tmp_path,
        **QUIET,
    )
    assert run.best_checkpoint.name == "best.ckpt" and run.last_checkpoint.name == "last.ckpt"
    assert run.epochs_completed == 6 and len(run.history) == 6
    first, last = run.history[0]["val_loss"], run.history[-1]["val_loss"]
    # toy4 per-datum negative ELBO starts near 2.6 nats; 6 epochs of Adam at 1e-2 must lower it clearly
    assert last < first - 0.1
    assert run.best_score == pytest.approx(min(r["val_loss"] for r in run.history))
    header = run.metrics_csv.read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss"} <= set(header)
    # the plain pyro.param site is checkpointed and is the tensor Pyro uses
    state = load_checkpoint(run.last_checkpoint)
    index = state["pyro_param_names"].index("x_log_scale")
    assert torch.equal(pyro.param("x_log_scale").detach(), state["state_dict"][f"store_params.params.{index}"])


def test_train_config_validates_each_field_by_name():
    with pytest.raises(ValueError, match=r"'epochs' must be an int in \[1, 2\*\*63 - 1\]"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="'lr' must be a finite number >= 0"):
        TrainConfig(epochs=1, lr=float("nan"))
    with pytest.raises(ValueError, match="'lr_schedule' must be one of"):
        TrainConfig(epochs=1, lr_schedule="cosine")
    with pytest.raises(ValueError, match="'patience'"):
        TrainConfig(epochs=1, patience=True)
    with pytest.raises(TypeError, match="unknown training setting.*'epoch'"):
        TrainConfig(epochs=1).replace(epoch=2)
    assert TrainConfig(epochs=1).replace(lr=0.5, patience=3) == TrainConfig(epochs=1, lr=0.5, patience=3)


def test_fit_takes_a_config_and_overrides_by_name(tmp_path, data):
    config = TrainConfig(epochs=3, batch_size=64, lr=1e-2, seed=4, progress=False)
    pyro.clear_param_store()
    with_config = fit(*make_function_pair(), Trace_ELBO(), data.train, config, out_dir=tmp_path / "a", epochs=1)
    pyro.clear_param_store()
    with_keywords = fit(
        *make_function_pair(),
        Trace_ELBO(),
        data.train,
        out_dir=tmp_path / "b",
        epochs=1,
        batch_size=64,
        lr=1e-2,
        seed=4,
        **QUIET,
    )
    assert with_config.epochs_completed == with_keywords.epochs_completed == 1  # the override won over epochs=3
    assert_same_parameters(
        final_parameters(with_config.last_checkpoint), final_parameters(with_keywords.last_checkpoint)
    )
    with pytest.raises(TypeError, match="needs a TrainConfig or at least epochs"):
        fit(*make_function_pair(), Trace_ELBO(), data.train, out_dir=tmp_path / "c")
    with pytest.raises(TypeError, match="unknown training setting"):
        fit(*make_function_pair(), Trace_ELBO(), data.train, config, out_dir=tmp_path / "d", epoch=1)


def test_load_trained_replaces_only_the_pairs_parameters(tmp_path, data):
    pyro.clear_param_store()
    model, guide = make_function_pair()
    run = fit(model, guide, Trace_ELBO(), data.train, out_dir=tmp_path, epochs=1, batch_size=64, **QUIET)
    saved = load_checkpoint(run.last_checkpoint)
    pyro.clear_param_store()
    pyro.param("someone_elses", torch.tensor([3.0]))
    for name in saved["pyro_param_names"]:  # stale values of the same names, one of another shape
        pyro.param(name, torch.zeros(7))
    load_trained(model, guide, Trace_ELBO(), run.last_checkpoint, data.train.x[:8])
    assert torch.equal(pyro.param("someone_elses").detach(), torch.tensor([3.0]))
    for index, name in enumerate(saved["pyro_param_names"]):
        assert torch.equal(
            pyro.get_param_store().get_state()["params"][name].detach(),
            saved["state_dict"][f"store_params.params.{index}"],
        )


def test_fit_pyro_modules_and_load_trained(tmp_path, data):
    model, guide = Decoder(), Encoder()
    run = fit(
        model,
        guide,
        Trace_ELBO(),
        data.train,
        data.val,
        epochs=2,
        batch_size=64,
        lr=1e-2,
        out_dir=tmp_path,
        evaluate=lambda m, g: m.log_scale.sum().item(),
        **QUIET,
    )
    best = final_parameters(run.best_checkpoint)
    assert run.evaluation == pytest.approx(float(best["elbo_module.model.log_scale"].sum()))
    fresh_model, fresh_guide = Decoder(), Encoder()
    load_trained(fresh_model, fresh_guide, Trace_ELBO(), run.best_checkpoint, data.train.x[:8])
    assert torch.equal(fresh_model.log_scale.detach(), best["elbo_module.model.log_scale"])
    assert torch.equal(fresh_guide.net[0].weight.detach(), best["elbo_module.guide.net.0.weight"])


def test_beta_warmup_and_decoder_switch(tmp_path, data):
    model, guide = make_function_pair()
    loss = WarmupELBO(beta=0.5, symmetric=True)
    fit(model, guide, loss, data.train, data.val, epochs=4, batch_size=128, warmup_epochs=3, out_dir=tmp_path, **QUIET)
    batches = 2  # 256 training points in batches of 128
    train_calls = [(b, s) for grad, b, s in loss.calls[1:] if grad]  # calls[0] initialises parameters
    expected = []
    for factor in (1 / 3, 2 / 3, 1.0, 1.0):
        expected += [(0.5 * factor, factor >= 1.0)] * batches
    assert [s for _, s in train_calls] == [s for _, s in expected]
    assert [b for b, _ in train_calls] == pytest.approx([b for b, _ in expected])
    # validation always measures the target objective
    assert {(b, s) for grad, b, s in loss.calls[1:] if not grad} == {(0.5, True)}
    assert (loss.beta, loss.symmetric) == (0.5, True)
    # a loss asked to be asymmetric never gets decoder-side samples
    asym = WarmupELBO(symmetric=False)
    fit(model, guide, asym, data.train, epochs=2, warmup_epochs=1, out_dir=tmp_path / "a", **QUIET)
    assert not any(s for _, _, s in asym.calls)


class LrRecorder(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_noam_learning_rate_schedule_per_step(tmp_path, data):
    model, guide = make_function_pair()
    recorder = LrRecorder()
    fit(
        model,
        guide,
        Trace_ELBO(),
        data.train,
        epochs=3,
        batch_size=64,
        lr=0.01,
        warmup_epochs=2,
        out_dir=tmp_path,
        callbacks=[recorder],
        **QUIET,
    )
    warmup_steps = 2 * 4  # 2 epochs of 256 / 64 batches
    expected = [0.01 * min(s / warmup_steps, math.sqrt(warmup_steps / s)) for s in range(1, 13)]
    assert recorder.lrs == pytest.approx(expected)


def deterministic_pair():
    """No latent variables: the loss is a deterministic function of one parameter."""

    def model(x):
        loc = pyro.param("loc", torch.zeros(2))
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def guide(x):
        pass

    return model, guide


def fit_deterministic_pair(out_dir, data, **settings):
    """``fit`` of :func:`deterministic_pair` with Trace_ELBO at a constant learning rate."""
    return fit(
        *deterministic_pair(),
        Trace_ELBO(),
        data.train,
        data.val,
        lr_schedule="constant",
        out_dir=out_dir,
        **QUIET,
        **settings,
    )


def test_early_stopping_with_patience(tmp_path, data):
    # lr = 0: the validation loss never improves after epoch 1, so patience 2 stops after epoch 3
    run = fit_deterministic_pair(tmp_path, data, epochs=10, lr=0.0, patience=2)
    assert run.stopped_early and run.epochs_completed == 3


def test_validation_uses_common_random_numbers_and_leaves_training_draws_alone(tmp_path, data):
    model, guide = make_function_pair()
    # lr = 0: the parameters never change, so with the same draws every epoch the
    # stochastic MIM validation estimate is exactly the same number each time
    frozen = fit(
        model,
        guide,
        Trace_MIM(),
        data.train,
        data.val,
        epochs=3,
        lr=0.0,
        lr_schedule="constant",
        seed=3,
        out_dir=tmp_path / "frozen",
        **QUIET,
    )
    val = [row["val_loss"] for row in frozen.history]
    assert val[0] == val[1] == val[2]
    train = [row["train_loss"] for row in frozen.history]
    assert len(set(train)) == 3  # training epochs still draw afresh
    # training draws do not depend on whether a validation pass runs between epochs
    fresh = dict(epochs=2, seed=3, clear_param_store=True, **QUIET)
    with_val = fit(*make_function_pair(), Trace_MIM(), data.train, data.val, out_dir=tmp_path / "with", **fresh)
    without = fit(*make_function_pair(), Trace_MIM(), data.train, None, out_dir=tmp_path / "without", **fresh)
    assert [r["train_loss"] for r in with_val.history] == [r["train_loss"] for r in without.history]


class LossRecorder(pl.Callback):
    """Records the loss class the training steps used and whether it ran compiled."""

    def on_train_end(self, trainer, pl_module):
        loss = pl_module.loss_object
        self.used = (type(loss).__name__, getattr(loss, "compile", None))


def test_compiled_training_matches_the_python_loss(tmp_path, data):
    # the compiled loss draws what the Python loss draws and runs the same ops, so the
    # runs are the same bit for bit; covered: the A-MIM warm-up epoch and the symmetric
    # ones (two graphs), a smaller last batch, validation
    runs, used = {}, {}
    for compiled in (True, False):
        recorder = LossRecorder()
        runs[compiled] = fit(
            *make_function_pair(),
            Trace_MIM(),
            data.train,
            data.val,
            epochs=3,
            batch_size=96,
            warmup_epochs=1,
            lr=1e-2,
            compile=compiled,
            clear_param_store=True,
            out_dir=tmp_path / str(compiled),
            callbacks=[recorder],
            **QUIET,
        )
        used[compiled] = recorder.used
    assert used == {True: ("JitTrace_MIM", True), False: ("Trace_MIM", None)}
    assert runs[True].history == runs[False].history
    assert_same_parameters(*(final_parameters(runs[c].last_checkpoint) for c in (True, False)))


def test_training_falls_back_to_the_python_loss_when_the_programs_cannot_compile(tmp_path, data, caplog):
    def untraceable_pair():
        model, guide = make_function_pair()

        def untraceable(x):
            if torch.jit.is_tracing():  # stands for any program torch.jit.trace rejects
                raise RuntimeError("this program cannot be traced")
            return model(x)

        return untraceable, guide

    fresh = dict(epochs=2, batch_size=96, warmup_epochs=1, clear_param_store=True, **QUIET)
    with caplog.at_level("WARNING", logger="pyromim.training.module"):
        fallback = fit(*untraceable_pair(), Trace_MIM(), data.train, out_dir=tmp_path / "a", **fresh)
    notices = [r.getMessage() for r in caplog.records if "could not compile" in r.getMessage()]
    assert notices == [
        "JitTrace_MIM could not compile this model/guide pair (RuntimeError: this program cannot be traced): "
        "training with the Python loss instead"
    ]
    python = fit(*untraceable_pair(), Trace_MIM(), data.train, out_dir=tmp_path / "b", compile=False, **fresh)
    # the failed compilation leaves the random state as it found it: the same run exactly
    assert_same_parameters(final_parameters(fallback.last_checkpoint), final_parameters(python.last_checkpoint))


class BreakScale(pl.Callback):
    """Sets the likelihood scale to 0 at the start of epoch 2, making log p(x|z) infinite."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            with torch.no_grad():
                pyro.param("scale").unconstrained().zero_()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data):
    def model(x):
        scale = pyro.param("scale", torch.ones(2))
        loc = pyro.param("loc", torch.zeros(2))
        with pyro.plate("data", x.shape[-2]):
            pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)

    def guide(x):
        pass

    with pyro.validation_enabled(False), pytest.raises(NonFiniteLossError) as info:
        fit(
            model,
            guide,
            Trace_ELBO(),
            data.train,
            data.val,
            epochs=4,
            lr=1e-3,
            out_dir=tmp_path,
            callbacks=[BreakScale()],
            **QUIET,
        )
    message = str(info.value)
    assert "Trace_ELBO objective is" in message and "epoch 2" in message
    assert "model site 'x' (log p)" in message
    assert "last good checkpoint is kept at" in message and "last.ckpt" in message
    state = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert state["epoch"] == 0  # written after epoch 1, before the failure
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


class ObjectiveRecorder(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        loss = pl_module.loss_object
        self.seen.append((loss.beta, loss.symmetric))


def test_trace_mim_warmup_resume_and_non_finite(tmp_path, data):
    recorder = ObjectiveRecorder()
    model, guide = make_function_pair()
    kwargs = dict(batch_size=128, lr=5e-3, warmup_epochs=2, seed=3, progress=False, clear_param_store=True)
    full = fit(
        model,
        guide,
        Trace_MIM(symmetric=True),
        data.train,
        data.val,
        epochs=3,
        out_dir=tmp_path / "full",
        callbacks=[recorder],
        **kwargs,
    )
    # 2 batches per epoch: beta 1/2 without decoder-side samples, then 1 with them
    assert recorder.seen == [(0.5, False)] * 2 + [(1.0, True)] * 4
    assert all(math.isfinite(row["val_loss"]) for row in full.history)
    model, guide = make_function_pair()
    fit(model, guide, Trace_MIM(symmetric=True), data.train, data.val, epochs=2, out_dir=tmp_path / "part", **kwargs)
    model, guide = make_function_pair()
    resumed = fit(
        model,
        guide,
        Trace_MIM(symmetric=True),
        data.train,
        data.val,
        epochs=3,
        out_dir=tmp_path / "part",
        resume=tmp_path / "part" / "checkpoints" / "last.ckpt",
        **kwargs,
    )
    assert_same_parameters(final_parameters(full.last_checkpoint), final_parameters(resumed.last_checkpoint))
    # Trace_MIM's own site-level report is carried into the training error
    model, guide = make_function_pair()
    with pyro.validation_enabled(False), pytest.raises(NonFiniteLossError) as info:
        fit(
            model,
            guide,
            Trace_MIM(symmetric=False),
            data.train,
            epochs=3,
            out_dir=tmp_path / "nan",
            callbacks=[BreakLogScale()],
            **kwargs,
        )
    message = str(info.value)
    assert "Trace_MIM objective" in message and "epoch 2" in message and "'x'" in message
    assert "last.ckpt" in message


class BreakLogScale(pl.Callback):
    """Sets the likelihood log-scale of ``make_function_pair`` to -inf at the start of epoch 2."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            with torch.no_grad():
                pyro.param("x_log_scale").unconstrained().fill_(-float("inf"))


class BreakScaleBeforeValidation(pl.Callback):
    """Sets the likelihood log-scale of ``make_function_pair`` to -inf before the first validation pass."""

    def on_validation_epoch_start(self, trainer, pl_module):
        with torch.no_grad():
            pyro.param("x_log_scale").unconstrained().fill_(-float("inf"))


def test_invalid_distribution_parameters_become_a_non_finite_loss_error(tmp_path, data):
    # with Pyro's validation on, torch refuses the Normal's zero scale with a tensor dump
    model, guide = make_function_pair()
    with pytest.raises(NonFiniteLossError) as info:
        fit(
            model,
            guide,
            Trace_ELBO(),
            data.train,
            data.val,
            epochs=2,
            out_dir=tmp_path,
            callbacks=[BreakScaleBeforeValidation()],
            progress=False,
            clear_param_store=True,
        )
    message = str(info.value)
    assert "epoch 1, validation batch 0" in message and "\n" not in message and "tensor(" not in message
    assert "Normal distribution got invalid (NaN/inf) values of its 'scale' in the model" in message
    assert "x_log_scale" in message and "no checkpoint was written yet" in message


# ---------------------------------------------------------------- resume


def run_kwargs(out_dir, **extra):
    # every run starts from the seed's initial parameters, not from an earlier run's in Pyro's store
    return dict(
        epochs=4,
        batch_size=64,
        lr=5e-3,
        warmup_epochs=2,
        patience=3,
        seed=7,
        out_dir=out_dir,
        progress=False,
        clear_param_store=True,
        **extra,
    )


def test_resume_matches_uninterrupted_run(tmp_path, data):
    model, guide = make_function_pair()
    full = fit(model, guide, WarmupELBO(), data.train, data.val, **run_kwargs(tmp_path / "full"))
    model, guide = make_function_pair()
    fit(model, guide, WarmupELBO(), data.train, data.val, **{**run_kwargs(tmp_path / "part"), "epochs": 2})
    model, guide = make_function_pair()
    resumed = fit(
        model,
        guide,
        WarmupELBO(),
        data.train,
        data.val,
        **run_kwargs(tmp_path / "part", resume=tmp_path / "part" / "checkpoints" / "last.ckpt"),
    )
    assert resumed.epochs_completed == 4
    assert_same_parameters(final_parameters(full.last_checkpoint), final_parameters(resumed.last_checkpoint))
    assert resumed.best_score == pytest.approx(full.best_score)
    # the metrics log of the resumed run keeps the epochs before the resume
    epochs = lambda p: sorted({float(r["epoch"]) for r in csv.DictReader(open(p)) if r["epoch"]})  # noqa: E731
    assert epochs(resumed.metrics_csv) == epochs(full.metrics_csv)
    assert not list((tmp_path / "part").glob("*.before-resume"))


def test_repeated_resumes_keep_every_log_row_and_a_stopped_run_trains_no_more(tmp_path, data):
    kwargs = {**run_kwargs(None), "epochs": 30, "patience": 1, "lr": 5e-2, "warmup_epochs": 1}
    model, guide = make_function_pair()
    full = fit(model, guide, WarmupELBO(), data.train, data.val, **{**kwargs, "out_dir": tmp_path / "full"})
    assert full.stopped_early and full.epochs_completed < 30
    part = tmp_path / "part"
    last = part / "checkpoints" / "last.ckpt"
    for epochs, resume in ((2, None), (3, last), (30, last)):  # two resumes, the second to the early stop
        model, guide = make_function_pair()
        resumed = fit(
            model,
            guide,
            WarmupELBO(),
            data.train,
            data.val,
            **{**kwargs, "out_dir": part, "epochs": epochs, "resume": resume},
        )
    assert_same_parameters(final_parameters(full.last_checkpoint), final_parameters(last))
    # every row, learning-rate rows too, in the order an uninterrupted run logs them
    assert resumed.metrics_csv.read_text() == full.metrics_csv.read_text()
    assert any(row["lr-Adam"] for row in csv.DictReader(open(full.metrics_csv)))
    # resuming the stopped run again trains nothing and rewrites nothing
    before = {p.name: p.read_bytes() for p in (last, part / "metrics.csv", part / "checkpoints" / "best.ckpt")}
    model, guide = make_function_pair()
    again = fit(model, guide, WarmupELBO(), data.train, data.val, **{**kwargs, "out_dir": part, "resume": last})
    assert {p.name: p.read_bytes() for p in (last, part / "metrics.csv", part / "checkpoints" / "best.ckpt")} == before
    assert (again.epochs_completed, again.stopped_early, again.best_score) == (
        full.epochs_completed,
        True,
        full.best_score,
    )


def test_tensorboard_log_when_installed(tmp_path, data):
    pytest.importorskip("tensorboard")
    model, guide = make_function_pair()
    fit(model, guide, WarmupELBO(), data.train, data.val, **{**run_kwargs(tmp_path), "epochs": 1})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


TRAIN_SCRIPT = """
import sys, time
import lightning.pytorch as pl
from pyromim import Trace_MIM
from pyromim.data import toy4
from pyromim.training import fit
from pyro_pairs import WarmupELBO, make_function_pair

class Slow(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep({sleep})

    def on_train_end(self, trainer, pl_module):
        # one write: the ranks share the pipe, and print's separate pieces can interleave
        sys.stdout.write(f"WORLD {{trainer.world_size}} {{trainer.global_rank}}\\n")
        sys.stdout.flush()

data = toy4(n_train=256, n_val=128, n_test=0, seed=0)
model, guide = make_function_pair()
run = fit(model, guide, WarmupELBO(), data.train, data.val, callbacks=[Slow()], **{kwargs})
if run.is_global_zero:
    print("RESULT", run.epochs_completed, run.best_score, flush=True)
"""


def write_script(path, sleep, **kwargs):
    path.write_text(textwrap.dedent(TRAIN_SCRIPT).format(sleep=sleep, kwargs=repr(kwargs)))
    return path


def subprocess_env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def test_killed_run_resumes_to_same_parameters(tmp_path, data):
    out = tmp_path / "killed"
    kwargs = run_kwargs(str(out))
    script = write_script(tmp_path / "train.py", sleep=0.5, **kwargs)
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # kill mid-run: during the sleep after an epoch or in the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = load_checkpoint(last)["epoch"]
    assert killed_at < 3  # the run really was interrupted before its end
    model, guide = make_function_pair()
    resumed = fit(model, guide, WarmupELBO(), data.train, data.val, **run_kwargs(out, resume=last))
    model, guide = make_function_pair()
    full = fit(model, guide, WarmupELBO(), data.train, data.val, **run_kwargs(tmp_path / "full"))
    assert_same_parameters(final_parameters(full.last_checkpoint), final_parameters(resumed.last_checkpoint))


# ---------------------------------------------------------------- many devices


@pytest.mark.slow  # about 40 s on two CPU cores: two processes each import torch, Pyro and Lightning
def test_two_process_cpu_ddp(tmp_path):
    out = tmp_path / "ddp"
    kwargs = dict(run_kwargs(str(out)), devices=2, strategy="ddp", accelerator="cpu", epochs=2)
    script = write_script(tmp_path / "train_ddp.py", sleep=0.0, **kwargs)
    done = subprocess.run(
        [sys.executable, str(script)], env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert len(result) == 1  # only global rank 0 reports
    _, epochs, best = result[0].split()
    assert int(epochs) == 2
    # per-datum negative ELBO of toy4 under a barely trained 2-D VAE: a few nats
    assert math.isfinite(float(best)) and 0.5 < float(best) < 10.0
    # both processes trained, as ranks of one group of two (fit keeps Lightning's banner quiet)
    # (searched anywhere in the output: the other rank's text may share the pipe's line)
    assert sorted(re.findall(r"WORLD \d+ \d+", done.stdout)) == ["WORLD 2 0", "WORLD 2 1"], done.stdout[-2000:]
    state = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_buffers_of_the_model_owner_follow_the_lightning_module():
    """``fit(vae.model, vae.guide, ...)`` must move the owner's buffers (the
    standard-normal prior's fixed loc) with the parameters: on a GPU a prior
    left on the CPU fails the first step. Dtype conversion shows the same path."""
    from pyromim import build_model
    from pyromim.training.fit import _method_owners
    from pyromim.training.module import PyroLightningModule
    from pyromim.training.params import StoreParameters

    vae = build_model("toy4")
    assert _method_owners(vae.model, vae.guide) == [vae]
    elbo_module = Trace_ELBO()(vae.model, vae.guide)
    module = PyroLightningModule(elbo_module, StoreParameters.adopt([], elbo_module), owners=[vae])
    module.to(torch.float64)
    assert vae.prior.loc.dtype == torch.float64


def test_fit_leaves_the_callers_param_store_alone_unless_asked(tmp_path, data):
    keep = pyro.param("callers_own_param", torch.tensor(3.0))
    model, guide = make_function_pair()
    fit(model, guide, Trace_ELBO(), data.train, epochs=1, batch_size=64, out_dir=tmp_path / "a", **QUIET)
    assert "callers_own_param" in pyro.get_param_store() and pyro.param("callers_own_param") is keep
    fit(
        model,
        guide,
        Trace_ELBO(),
        data.train,
        epochs=1,
        batch_size=64,
        out_dir=tmp_path / "b",
        clear_param_store=True,
        **QUIET,
    )
    assert "callers_own_param" not in pyro.get_param_store()


class ValidationBatchSizes(pl.Callback):
    def __init__(self):
        self.sizes = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.sizes.append(batch.shape[0])


def test_validation_batch_size_defaults_to_the_training_batch_size(tmp_path, data):
    sizes = {}
    for val_batch_size in (None, 50):
        recorder = ValidationBatchSizes()
        fit(
            *make_function_pair(),
            Trace_ELBO(),
            data.train,
            data.val,
            epochs=1,
            batch_size=96,
            val_batch_size=val_batch_size,
            out_dir=tmp_path / str(val_batch_size),
            callbacks=[recorder],
            **QUIET,
        )
        sizes[val_batch_size] = recorder.sizes
    assert sizes == {None: [96, 32], 50: [50, 50, 28]}  # 128 validation items


@pytest.mark.parametrize("lr", [0.05, 0.0])
def test_each_epoch_serialises_its_checkpoint_once(tmp_path, data, monkeypatch, lr):
    # an epoch that improves the validation loss writes best.ckpt and copies its bytes to
    # last.ckpt (one serialisation, both callbacks' bookkeeping in it); one that does not
    # writes last.ckpt alone (lr = 0: only the first epoch improves)
    from pyromim.training.lightning_checkpoints import AtomicCheckpointIO

    saved = []
    save = AtomicCheckpointIO.save_checkpoint

    def counted(self, checkpoint, path, storage_options=None):
        saved.append(Path(path).name)
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", counted)
    run = fit_deterministic_pair(tmp_path, data, epochs=3, lr=lr)
    improving = lr > 0
    assert saved == (["best.ckpt"] * 3 if improving else ["best.ckpt", "last.ckpt", "last.ckpt"])
    best, last = load_checkpoint(run.best_checkpoint), load_checkpoint(run.last_checkpoint)
    assert (run.best_checkpoint.read_bytes() == run.last_checkpoint.read_bytes()) is improving
    assert (best["epoch"], last["epoch"]) == ((2, 2) if improving else (0, 2))
    for state in (best, last):
        paths = sorted(Path(s["best_model_path"]).name for s in state["callbacks"].values() if "best_model_path" in s)
        assert paths == ["best.ckpt", "last.ckpt"]
    scores = [s["best_model_score"] for s in last["callbacks"].values() if s.get("monitor") == "val_loss"]
    assert scores == [pytest.approx(min(row["val_loss"] for row in run.history))]
    assert run.best_score == pytest.approx(min(row["val_loss"] for row in run.history))
