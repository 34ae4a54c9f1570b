"""``fit``: train a Pyro model/guide pair with Lightning, from Python or a command line.

A run directory ``out_dir`` receives::

    checkpoints/best.ckpt   lowest validation loss (training loss without validation data)
    checkpoints/last.ckpt   end of the latest epoch (resume from it)
    metrics.csv             per-epoch train_loss, val_loss, beta, lr (Lightning CSV logger),
                            rewritten whole and atomically at every row; a resumed run keeps
                            the rows logged before its checkpoint
    tensorboard/            the same for TensorBoard, when the tensorboard package is installed

Multi-device training goes through Lightning: ``devices=N, strategy="ddp"``
starts ``N`` processes (CPU processes here, GPUs where present).  Lightning's
``ddp`` launcher re-runs the calling script in each extra process, so call
``fit`` from a script or console command (not an interactive session).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import pyro
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch.utils.data import default_collate

from pyromim.data.batches import Batch, DataArg, call
from pyromim.infer.trace_mim import JitTrace_MIM, Trace_MIM
from pyromim.ops import private
from pyromim.training.cluster import check_num_nodes
from pyromim.training.config import TrainConfig
from pyromim.training.data_module import SeededDataModule, TensorItems
from pyromim.training.interrupts import StopOnInterrupt, StopRequested, TrainingInterrupted, stop_on_sigint
from pyromim.training.lightning_checkpoints import (
    AtomicCheckpointIO,
    BestCheckpoint,
    LatestCheckpoint,
    load_checkpoint,
)
from pyromim.training.module import STOPPED_KEY, PyroLightningModule
from pyromim.training.params import StoreParameters, param_sites_used
from pyromim.training.run_log import EpochRecords, RunLog, rows_before, run_loggers

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: The checkpoint entry holding :func:`fit`'s ``run_info``.
RUN_INFO_KEY = "pyromim_run"


@dataclass
class FitResult:
    """What a :func:`fit` call produced.

    :ivar out_dir: the run directory.
    :ivar best_checkpoint: path of ``best.ckpt`` (``None`` if no epoch finished).
    :ivar last_checkpoint: path of ``last.ckpt`` (``None`` if no epoch finished).
    :ivar metrics_csv: the CSV metrics log.
    :ivar epochs_completed: epochs finished, counting those before a resume.
    :ivar stopped_early: whether early stopping ended the run.
    :ivar best_score: best monitored loss (``val_loss``, else ``train_loss``).
    :ivar history: per-epoch metrics of the epochs run by this call.
    :ivar evaluation: what the ``evaluate`` hook returned (``None`` without one).
    :ivar is_global_zero: ``False`` in the extra processes of a multi-device run.
    """

    out_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    metrics_csv: Path
    epochs_completed: int
    stopped_early: bool
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    evaluation: Any = None
    is_global_zero: bool = True


def _as_dataset(data: Any, role: str) -> torch.utils.data.Dataset:
    if isinstance(data, torch.Tensor):
        return TensorItems(data)
    if isinstance(data, torch.utils.data.Dataset):
        return data
    if isinstance(data, (tuple, list, dict)) and data:
        values = list(data.values()) if isinstance(data, dict) else list(data)
        if all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in values):
            sizes = {int(v.shape[0]) for v in values}
            if len(sizes) == 1:
                return _DictItems(data) if isinstance(data, dict) else torch.utils.data.TensorDataset(*values)
            raise ValueError(
                f"{role}: the tensors of a tuple/dict must all have the same leading size (the data "
                f"points), got leading sizes {sorted(sizes)}"
            )
    raise TypeError(
        f"{role} must be a torch Dataset (e.g. pyromim.data.ArrayDataset, a TensorDataset whose items are "
        f"the model's arguments), a tensor, or a tuple/dict of tensors of the model's arguments; got {type(data)}"
    )


class _DictItems(torch.utils.data.Dataset):
    """Items ``{key: tensor[i]}`` of a dict of tensors (batches are dicts of the model's keyword arguments)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = dict(tensors)
        self.length = int(next(iter(self.tensors.values())).shape[0])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


def _first_batch(data: torch.utils.data.Dataset, batch_size: int) -> Batch:
    n = min(batch_size, len(cast(Sized, data)))
    return default_collate([data[i] for i in range(n)])


@contextmanager
def _uncompiled(loss: Any) -> Iterator[None]:
    """Run a compiled loss (one with ``compile = True``) through its Python path inside."""
    compiled = getattr(loss, "compile", False) is True
    if compiled:
        loss.compile = False
    try:
        yield
    finally:
        if compiled:
            loss.compile = True


def _strategy(strategy: Any) -> Any:
    # Objectives switch terms on during training (decoder-side samples after the
    # warm-up, a learned q(x)), so some parameters may get no gradient in a step.
    if strategy == "ddp":
        return "ddp_find_unused_parameters_true"
    return strategy


def _method_owners(*fns: Any) -> list[torch.nn.Module]:
    """The distinct modules whose bound methods ``fns`` are (``vae.model``, ``vae.guide``)."""
    owners: list[torch.nn.Module] = []
    for fn in fns:
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, torch.nn.Module) and not isinstance(fn, torch.nn.Module):
            if all(owner is not o for o in owners):
                owners.append(owner)
    return owners


@contextmanager
def _console(c: TrainConfig, epochs: int) -> Iterator[list[Callback]]:
    """What a :func:`fit` call prints: with ``c.verbose`` Lightning's own output and bars; else
    Lightning's banner, notices and unactionable warnings dropped, and (with ``c.progress``)
    one bar over the epochs, whose callback is yielded."""
    if c.verbose:
        yield []
        return
    from pyromim.experiments.console import ProgressBar, quiet_lightning  # pyromim.experiments imports this module

    with quiet_lightning(), ProgressBar(epochs, enabled=c.progress) as bar:
        yield [bar.start_run("training", epochs)] if c.progress else []


def _trainer(
    c: TrainConfig, epochs: int, callbacks: list[Callback], loggers: list[Any], out_dir: Path, validates: bool
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        min_epochs=min(c.warmup_epochs, epochs) if c.patience is not None else None,
        accelerator=c.accelerator,
        devices=c.devices,
        num_nodes=c.num_nodes,
        strategy=_strategy(c.strategy),
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=c.progress and c.verbose,  # else one bar of pyromim's own (_console)
        enable_model_summary=c.verbose,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        inference_mode=False,
        limit_val_batches=None if validates else 0,
        log_every_n_steps=1,
        default_root_dir=out_dir,
    )


def _fit_config(val_data: Any, config: TrainConfig | None, settings: dict[str, Any]) -> tuple[Any, TrainConfig]:
    """:func:`fit`'s validation data and settings: ``config`` with ``settings`` replaced (or
    ``settings`` alone), and a config given in the place of the validation data moved to its own."""
    if isinstance(val_data, TrainConfig) and config is None:  # fit(model, guide, loss, train, config)
        val_data, config = None, val_data
    if config is None:
        if "epochs" not in settings:
            raise TypeError("fit() needs a TrainConfig or at least epochs=N (e.g. fit(..., out_dir='run', epochs=10))")
        return val_data, TrainConfig(**settings)
    return val_data, config.replace(**settings)


def _verified_resume(resume: str | Path | None) -> dict[str, Any] | None:
    """The checkpoint a run resumes from, verified before anything is written (a damaged checkpoint
    is refused, never trained on); ``None`` for a new run."""
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {resume} does not exist")
    return load_checkpoint(resume) if resume is not None else None


def _lightning_module(
    model: Callable, guide: Callable, loss: Any, train: torch.utils.data.Dataset, c: TrainConfig, data_arg: DataArg
) -> PyroLightningModule:
    """The Lightning module that trains ``model``/``guide`` with ``loss`` (the compiled loss for
    :class:`~pyromim.infer.Trace_MIM` when ``c.compile``), its parameters created by one call."""
    if c.compile and type(loss) is Trace_MIM:
        loss = JitTrace_MIM.like(loss)
    elbo_module = loss(model, guide)
    # ELBOModule.parameters() needs the parameters to exist: create them with one
    # call (through the Python loss: a compiled one hides its param sites)
    with torch.no_grad(), _uncompiled(loss):
        names = param_sites_used(lambda: call(elbo_module, _first_batch(train, c.batch_size)))
    store_params = StoreParameters.adopt(names, elbo_module)
    return PyroLightningModule(
        elbo_module,
        store_params,
        lr=c.lr,
        warmup_epochs=c.warmup_epochs,
        lr_schedule=c.lr_schedule,
        lr_warmup_epochs=c.lr_warmup_epochs,
        seed=c.seed,
        owners=_method_owners(model, guide),
        data_arg=data_arg,
    )


def _log_nothing_left(resumed: Mapping[str, Any], c: TrainConfig) -> None:
    """Say so when the checkpoint resumed from ends a run that trains no further."""
    done = int(resumed.get("epoch", -1)) + 1
    if resumed.get(STOPPED_KEY):
        logger.info("%s: the run stopped early after epoch %d; nothing left to train", c.resume, done)
    elif done >= c.epochs:
        logger.info("%s: the run has done its %d epochs; nothing left to train", c.resume, done)


@dataclass
class _FitCallbacks:
    """The callbacks every :func:`fit` run has, by what their results are read for.

    :ivar best: the checkpoint of the lowest monitored loss (``best.ckpt``).
    :ivar latest: the checkpoint of every epoch's end (``last.ckpt``).
    :ivar history: the per-epoch records.
    :ivar early: early stopping, ``None`` without patience or validation data.
    """

    best: BestCheckpoint
    latest: LatestCheckpoint
    history: EpochRecords
    early: EarlyStopping | None

    @classmethod
    def make(cls, ckpt_dir: Path, validates: bool, patience: int | None) -> _FitCallbacks:
        """The callbacks of a run writing its checkpoints into ``ckpt_dir``."""
        checkpoint = BestCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor="val_loss" if validates else "train_loss",
            mode="min",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        # Lightning's save_last only refreshes last.ckpt when a top-k save happened;
        # a second, unmonitored callback writes it after every epoch (after "best",
        # so it records the best-so-far state too), and writes best.ckpt with it
        latest = LatestCheckpoint(
            checkpoint,
            dirpath=ckpt_dir,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        history = EpochRecords()
        early = None
        if patience is not None and validates:
            early = EarlyStopping(monitor="val_loss", patience=patience, mode="min", check_finite=True)
        return cls(checkpoint, latest, history, early)

    def callbacks(self) -> list[Callback]:
        """The callbacks in the order Lightning calls them: best, then latest, then the records."""
        return [self.best, self.latest, self.history] + ([self.early] if self.early is not None else [])


def _train(
    c: TrainConfig,
    module: PyroLightningModule,
    train: torch.utils.data.Dataset,
    val: torch.utils.data.Dataset | None,
    callbacks: list[Callback],
    loggers: list[Any],
    out_dir: Path,
) -> pl.Trainer:
    """Run Lightning's training of ``module``, stopping at a batch boundary on Ctrl-C; the trainer.

    :raises pyromim.training.TrainingInterrupted: Ctrl-C stopped the training.
    """
    stop = StopOnInterrupt()
    with _console(c, c.epochs) as bar_callbacks:
        trainer = _trainer(c, c.epochs, [*callbacks, *bar_callbacks, stop], loggers, out_dir, val is not None)
        private.start_ranks_with_sigint_held(trainer)
        try:
            with stop_on_sigint(stop):
                try:
                    trainer.fit(
                        module,
                        datamodule=SeededDataModule(train, val, c.batch_size, c.seed, c.val_batch_size),
                        ckpt_path=c.resume,
                    )
                except StopRequested:
                    stop.wait_for_children()  # they stop at the same batch; another Ctrl-C exits at once
                    raise
        except StopRequested:
            last_file = out_dir / CHECKPOINT_DIR / "last.ckpt"
            if not last_file.is_file():
                raise TrainingInterrupted(None, 0, trainer.global_rank) from None
            epochs = int(load_checkpoint(last_file)["epoch"]) + 1
            raise TrainingInterrupted(last_file, epochs, trainer.global_rank) from None
    return trainer


def _evaluation(
    trainer: pl.Trainer,
    module: PyroLightningModule,
    best: BestCheckpoint,
    c: TrainConfig,
    evaluate: Callable[[Callable, Callable], Any] | None,
    model: Callable,
    guide: Callable,
) -> Any:
    """What ``evaluate(model, guide)`` returns on global rank 0, after the best checkpoint's
    parameters are restored if ``c.restore_best``; ``None`` elsewhere or without ``evaluate``."""
    if not trainer.is_global_zero or evaluate is None:
        return None
    if c.restore_best and best.best_model_path:
        module.load_state_dict(load_checkpoint(Path(best.best_model_path))["state_dict"])
    return evaluate(model, guide)


def _fit_result(
    out_dir: Path,
    trainer: pl.Trainer,
    records: _FitCallbacks,
    csv_log: RunLog,
    resumed: Mapping[str, Any] | None,
    evaluation: Any,
) -> FitResult:
    """The :class:`FitResult` of a finished training."""
    best, latest = records.best, records.latest
    score = best.best_model_score
    epochs_completed = trainer.current_epoch
    if resumed is not None:  # a run resumed after its end trains no epoch; it had done these
        epochs_completed = max(epochs_completed, int(resumed.get("epoch", -1)) + 1)
    return FitResult(
        out_dir=out_dir,
        best_checkpoint=Path(best.best_model_path) if best.best_model_path else None,
        last_checkpoint=Path(latest.best_model_path) if latest.best_model_path else None,
        metrics_csv=Path(csv_log.log_dir) / "metrics.csv",
        epochs_completed=epochs_completed,
        stopped_early=bool(records.early is not None and records.early.stopped_epoch > 0),
        best_score=None if score is None or not math.isfinite(float(score)) else float(score),
        history=[records.history.rows[k] for k in sorted(records.history.rows)],
        evaluation=evaluation,
        is_global_zero=trainer.is_global_zero,
    )


def fit(
    model: Callable,
    guide: Callable,
    loss: Any,
    train_data: Any,
    val_data: Any = None,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path,
    evaluate: Callable[[Callable, Callable], Any] | None = None,
    callbacks: Sequence[Callback] = (),
    run_info: Mapping[str, Any] | None = None,
    data_arg: DataArg = None,
    **settings: Any,
) -> FitResult:
    """Train ``model``/``guide`` with the Pyro objective ``loss`` (any ELBO-family loss).

    :param model: Pyro model, called as ``model(x)`` with a batch ``x``; a plain
        function with ``pyro.param``/``pyro.module`` or an ``nn.Module``/``PyroModule``.
        Any other signature (``model(xs, ys)``, covariates, masks, lengths) takes
        batches that are tuples or dicts of its arguments, passed through as
        ``model(*batch)`` / ``model(**batch)``.
    :param guide: Pyro guide, called as ``guide(x)`` (or with the same tuple/dict batch).
    :param loss: e.g. ``pyro.infer.Trace_ELBO()`` or ``pyromim.Trace_MIM(...)``.  If it
        has a ``beta`` attribute it is warmed up as ``beta * min(1, epoch / warmup_epochs)``;
        if it has ``symmetric=True``, decoder-side samples are only switched on once
        that factor reaches 1 (see :func:`pyromim.training.beta_factor`).
    :param train_data: a torch ``Dataset`` whose items are tensors (e.g.
        :class:`pyromim.data.ArrayDataset`) or a tensor of items; for other
        signatures a ``Dataset`` whose items are tuples/dicts of the model's
        arguments (``TensorDataset(xs, ys)``), or a tuple/dict of tensors with
        the data points along their leading dimension (``(xs, ys)``).
    :param val_data: validation data (same types) or ``None``.
    :param config: the run's settings (epochs, batch size, learning rate, warm-up,
        patience, seed, devices, resume, ...; see :class:`~pyromim.training.TrainConfig`).
    :param out_dir: run directory (checkpoints, metrics).
    :param evaluate: called as ``evaluate(model, guide)`` at the end (global rank 0 only),
        after the best checkpoint's parameters are restored if ``config.restore_best``.
    :param callbacks: extra Lightning callbacks.
    :param run_info: plain data (strings, numbers, lists, dicts) stored in every
        checkpoint under ``"pyromim_run"`` (e.g. the spec and objective, which a resume checks).
    :param data_arg: the data argument of tuple/dict batches (position or key;
        default the first tensor), whose leading size is the batch size the
        logged per-datum loss divides by.
    :param settings: :class:`~pyromim.training.TrainConfig` fields by name, overriding
        ``config``'s (``fit(model, guide, loss, x, out_dir="run", epochs=5)`` needs no config).

    What it prints, many devices, resuming and Pyro's param store: see :ref:`fit-behaviour`.

    :raises pyromim.models.CheckpointError: ``resume`` is damaged or not a pyromim checkpoint.
    :raises pyromim._run_dir.RunDirectoryError: on ``resume``, the run directory's ``metrics.csv`` is not
        a readable CSV text file (so its earlier rows cannot be kept).
    :raises pyromim.training.TrainingInterrupted: Ctrl-C (SIGINT) stopped training at a batch
        boundary; ``last.ckpt`` holds the last finished epoch (see ``pyromim.training.interrupts``).
    :raises pyromim.training.NonFiniteLossError: the objective became NaN/inf
        (the message names the non-finite terms; the last good checkpoint is kept).
    """
    val_data, c = _fit_config(val_data, config, settings)
    check_num_nodes(c.num_nodes)
    out_dir = Path(out_dir)
    resumed = _verified_resume(c.resume)
    train = _as_dataset(train_data, "train_data")
    val = None if val_data is None else _as_dataset(val_data, "val_data")

    pl.seed_everything(c.seed, verbose=False)
    if c.clear_param_store:
        pyro.clear_param_store()
    module = _lightning_module(model, guide, loss, train, c, data_arg)
    module.run_info = dict(run_info or {})
    if resumed is not None:
        _log_nothing_left(resumed, c)
    records = _FitCallbacks.make(out_dir / CHECKPOINT_DIR, val is not None, c.patience)
    # a resumed run keeps the rows logged before its checkpoint (those after it are logged again)
    kept = rows_before(out_dir / "metrics.csv", int(resumed["global_step"])) if resumed is not None else []
    csv_log = RunLog(out_dir, kept)
    trainer = _train(c, module, train, val, [*records.callbacks(), *callbacks], run_loggers(csv_log, out_dir), out_dir)

    evaluation = _evaluation(trainer, module, records.best, c, evaluate, model, guide)
    return _fit_result(out_dir, trainer, records, csv_log, resumed, evaluation)


def load_trained(
    model: Callable,
    guide: Callable,
    loss: Any,
    checkpoint: str | Path,
    example: Batch,
    *,
    clear_param_store: bool = False,
) -> None:
    """Load a checkpoint written by :func:`fit` into ``model``/``guide`` (and Pyro's param store).

    ``example`` is a batch (a tensor, or a tuple/dict of the model's
    arguments) used for one call that creates the parameters (as at
    the start of training); then the saved values are copied in.  Loading uses
    ``weights_only=True``.  Of Pyro's global param store only the entries this
    model/guide pair uses are replaced (so stale parameters of the same names
    cannot shadow the loaded ones); the caller's other parameters stay as they
    are. ``clear_param_store=True`` clears the whole store first.
    """
    state = load_checkpoint(checkpoint)
    store = pyro.get_param_store()
    if clear_param_store:
        store.clear()
    else:
        with store.scope(), torch.no_grad():  # which names does the pair use? (found in an empty store)
            used = param_sites_used(lambda: call(loss(model, guide), example))
        for name in used:
            if name in store:
                del store[name]
    elbo_module = loss(model, guide)
    with torch.no_grad():
        names = param_sites_used(lambda: call(elbo_module, example))
    store_params = StoreParameters.adopt(names, elbo_module)
    module = PyroLightningModule(elbo_module, store_params, owners=_method_owners(model, guide))
    module.on_load_checkpoint(state)
    module.load_state_dict(state["state_dict"])
