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

import csv
import importlib.util
import io
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
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from torch.utils.data import default_collate

from pyromim._atomic import atomic_write
from pyromim._run_dir import RunDirectoryError
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


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it keeps every row (starting from ``rows``) and
    rewrites the whole file atomically at each save, instead of deleting an existing file
    and appending to it."""

    def __init__(self, log_dir: str, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows)
        self._written: int | None = None  # rows in the file, once written
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        pass

    def save(self) -> None:
        # skip a row logged twice (see _EpochRecords)
        self.rows.extend(row for row in self.metrics if row not in self.rows[-8:])
        self.metrics = []
        if self._written == len(self.rows):
            return  # Lightning saves again after each logged row: the file already holds it
        fields = sorted({key for row in self.rows for key in row})

        def write(f: Any) -> None:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.metrics_file_path, write, newline="")
        self._written = len(self.rows)


class _RunLog(CSVLogger):
    """``metrics.csv`` of a run, written after every logged row, continuing ``rows`` (see :class:`_KeepingWriter`)."""

    def __init__(self, save_dir: Path, rows: list[dict[str, Any]]) -> None:
        super().__init__(save_dir=save_dir, name="", version="", flush_logs_every_n_steps=1)
        self._rows = rows

    @property
    @rank_zero_experiment
    def experiment(self) -> _KeepingWriter:
        if not isinstance(self._experiment, _KeepingWriter):
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._rows)
        return self._experiment


class _EpochRecords(LearningRateMonitor):
    """The run's epoch-level records, in one callback (Lightning calls every hook of
    every callback at every step, some 15 ms a run per callback on toy4):

    * the learning rate, logged at each epoch's start (Lightning's ``LearningRateMonitor``);
    * ``rows``: the epoch-level metrics Lightning reports (after validation), per epoch;
    * the epoch's training row, logged when the epoch's checkpoints are written.
      Lightning logs it only after them, so a run killed in between would resume from
      the checkpoint without ever logging that row. Lightning's own logging of the
      same row afterwards is skipped by :class:`_KeepingWriter`.
    """

    def __init__(self) -> None:
        super().__init__(logging_interval="epoch")
        self.rows: dict[int, dict[str, float]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row = {"epoch": float(trainer.current_epoch + 1)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        self.rows[trainer.current_epoch + 1] = row

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Any) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if not trainer.training or not epoch_loop.batch_progress.is_last_batch:
            return  # only at the end of an epoch, when its training metrics are complete
        private.log_pending_epoch_metrics(trainer)


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


def _rows_before(path: Path, global_step: int) -> list[dict[str, Any]]:
    """The rows of the log ``path`` logged before optimiser step ``global_step`` (those a resumed run keeps).

    :raises pyromim._run_dir.RunDirectoryError: the file is not CSV text (binary data, say), whose rows
        would otherwise be lost without a word when the resumed run rewrites it.
    """
    if not path.is_file():
        return []
    why = None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        if "\x00" in text:
            why = f"it holds NUL bytes at offset {text.index(chr(0))}, so binary data rather than CSV text"
        else:
            table = csv.DictReader(io.StringIO(text, newline=""))
            rows = [{k: v for k, v in row.items() if k and v not in ("", None)} for row in table]
    except UnicodeDecodeError as err:
        why = f"byte {err.start} is not UTF-8 text"
    except csv.Error as err:
        why = f"not a CSV table: {err}"
    except OSError as err:
        why = f"cannot read it: {err.strerror or err}"
    if why is not None:
        raise RunDirectoryError(
            f"{path}: cannot continue the run's log of per-epoch metrics ({why}); move the file out of the run "
            "directory and resume again (the new log starts at the checkpoint's epoch), or train the run anew "
            "(--overwrite; overwrite=True from Python)"
        )
    kept = []
    for row in rows:
        try:
            if int(float(row["step"])) < global_step:
                kept.append(row)
        except (KeyError, ValueError, OverflowError):  # a row without a (finite) step is not Lightning's: drop it
            continue
    return kept


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

    Console: one bar over the epochs on stderr (none with ``progress=False``); Lightning's
    banner, notices, per-batch bars and the warnings a user cannot act on are not shown
    unless ``verbose=True``.

    Multi-device: ``devices=N, strategy="ddp"`` (``ddp`` allows parameters without
    gradient in some steps). ``resume`` continues from a checkpoint to the same
    parameters as an uninterrupted run; its checksum is verified before anything is
    written, and a run that had stopped early (or done its ``epochs``) trains no
    further, it only evaluates. Pyro's global param store is left as the
    caller has it unless ``clear_param_store=True`` (parameters already there keep
    their values and go on training, as with :class:`pyro.infer.SVI`); to train
    without touching it at all, call ``fit`` inside ``with pyro.get_param_store().scope():``.

    :raises pyromim.models.CheckpointError: ``resume`` is damaged or not a pyromim checkpoint.
    :raises pyromim._run_dir.RunDirectoryError: on ``resume``, the run directory's ``metrics.csv`` is not
        a readable CSV text file (so its earlier rows cannot be kept).
    :raises pyromim.training.TrainingInterrupted: Ctrl-C (SIGINT) stopped training at a batch
        boundary; ``last.ckpt`` holds the last finished epoch (see ``pyromim.training.interrupts``).
    :raises pyromim.training.NonFiniteLossError: the objective became NaN/inf
        (the message names the non-finite terms; the last good checkpoint is kept).
    """
    if isinstance(val_data, TrainConfig) and config is None:  # fit(model, guide, loss, train, config)
        val_data, config = None, val_data
    if config is None:
        if "epochs" not in settings:
            raise TypeError("fit() needs a TrainConfig or at least epochs=N (e.g. fit(..., out_dir='run', epochs=10))")
        c = TrainConfig(**settings)
    else:
        c = config.replace(**settings)
    epochs, batch_size, seed, resume = c.epochs, c.batch_size, c.seed, c.resume
    check_num_nodes(c.num_nodes)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / CHECKPOINT_DIR
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {resume} does not exist")
    # verified before anything is written: a damaged checkpoint is refused, never trained on
    resumed = load_checkpoint(resume) if resume is not None else None
    train = _as_dataset(train_data, "train_data")
    val = None if val_data is None else _as_dataset(val_data, "val_data")

    pl.seed_everything(seed, verbose=False)
    if c.clear_param_store:
        pyro.clear_param_store()
    if c.compile and type(loss) is Trace_MIM:
        loss = JitTrace_MIM.like(loss)
    elbo_module = loss(model, guide)
    # ELBOModule.parameters() needs the parameters to exist: create them with one
    # call (through the Python loss: a compiled one hides its param sites)
    with torch.no_grad(), _uncompiled(loss):
        names = param_sites_used(lambda: call(elbo_module, _first_batch(train, batch_size)))
    store_params = StoreParameters.adopt(names, elbo_module)
    module = PyroLightningModule(
        elbo_module,
        store_params,
        lr=c.lr,
        warmup_epochs=c.warmup_epochs,
        lr_schedule=c.lr_schedule,
        lr_warmup_epochs=c.lr_warmup_epochs,
        seed=seed,
        owners=_method_owners(model, guide),
        data_arg=data_arg,
    )
    module.run_info = dict(run_info or {})
    if resumed is not None:
        done = int(resumed.get("epoch", -1)) + 1
        if resumed.get(STOPPED_KEY):
            logger.info("%s: the run stopped early after epoch %d; nothing left to train", resume, done)
        elif done >= epochs:
            logger.info("%s: the run has done its %d epochs; nothing left to train", resume, done)

    monitor = "val_loss" if val is not None else "train_loss"
    checkpoint = BestCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
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
    history = _EpochRecords()
    all_callbacks: list[Callback] = [checkpoint, latest, history]
    early = None
    if c.patience is not None and val is not None:
        early = EarlyStopping(monitor="val_loss", patience=c.patience, mode="min", check_finite=True)
        all_callbacks.append(early)
    all_callbacks.extend(callbacks)
    # a resumed run keeps the rows logged before its checkpoint (those after it are logged again)
    kept = _rows_before(out_dir / "metrics.csv", int(resumed["global_step"])) if resumed is not None else []
    csv_log = _RunLog(out_dir, kept)
    loggers: list[Any] = [csv_log]
    if importlib.util.find_spec("tensorboard") is not None:
        # TensorBoard when installed, next to the CSV log: `tensorboard --logdir out_dir/tensorboard`
        loggers.append(TensorBoardLogger(save_dir=out_dir, name="tensorboard", version=""))
    stop = StopOnInterrupt()
    with _console(c, epochs) as bar_callbacks:
        trainer = _trainer(c, epochs, [*all_callbacks, *bar_callbacks, stop], loggers, out_dir, val is not None)
        try:
            with stop_on_sigint(stop):
                trainer.fit(
                    module,
                    datamodule=SeededDataModule(train, val, batch_size, seed, c.val_batch_size),
                    ckpt_path=resume,
                )
        except StopRequested:
            last_file = ckpt_dir / "last.ckpt"
            if not last_file.is_file():
                raise TrainingInterrupted(None, 0) from None
            raise TrainingInterrupted(last_file, int(load_checkpoint(last_file)["epoch"]) + 1) from None

    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    last = Path(latest.best_model_path) if latest.best_model_path else None
    evaluation = None
    if trainer.is_global_zero and evaluate is not None:
        if c.restore_best and best is not None:
            module.load_state_dict(load_checkpoint(best)["state_dict"])
        evaluation = evaluate(model, guide)
    score = checkpoint.best_model_score
    epochs_completed = trainer.current_epoch
    if resumed is not None:  # a run resumed after its end trains no epoch; it had done these
        epochs_completed = max(epochs_completed, int(resumed.get("epoch", -1)) + 1)
    return FitResult(
        out_dir=out_dir,
        best_checkpoint=best,
        last_checkpoint=last,
        metrics_csv=Path(csv_log.log_dir) / "metrics.csv",
        epochs_completed=epochs_completed,
        stopped_early=bool(early is not None and early.stopped_epoch > 0),
        best_score=None if score is None or not math.isfinite(float(score)) else float(score),
        history=[history.rows[k] for k in sorted(history.rows)],
        evaluation=evaluation,
        is_global_zero=trainer.is_global_zero,
    )


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
