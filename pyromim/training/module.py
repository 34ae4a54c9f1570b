"""The Lightning module that trains any Pyro model/guide pair with any ELBO-family objective.

Pattern of Pyro's own Lightning example: the loss object's ``__call__(model,
guide)`` returns an ``ELBOModule`` whose ``forward(*args, **kwargs)`` is the
differentiable objective and whose parameters Lightning optimises.  A batch is
a tensor ``x`` of shape ``(B, *event_shape)``, called as ``model(x)`` /
``guide(x)``, or a tuple/dict of the model's arguments (labels, covariates,
masks, lengths) passed through as ``model(*batch)`` / ``model(**batch)`` (see
:mod:`pyromim.data.batches`).

Per-datum objective: the value optimised and logged is the objective divided by
the batch size ``B``, the leading size of the data argument (for the usual
model with a data plate over the batch this
is the mean per-datum loss, which makes the learning rate independent of ``B``
and DDP's gradient averaging exact).

Randomness: at the start of every epoch the global RNGs (torch, numpy, random)
are reseeded from ``(seed, epoch, rank)``, and batches are shuffled by a
``DistributedSampler`` seeded with ``(seed, epoch)``; so an epoch's samples
depend only on the parameters at its start, and a run resumed from a
checkpoint retraces an uninterrupted one exactly.

Validation uses the target objective (the loss's own ``beta`` and
``symmetric``), so validation losses are comparable across the warm-up, and
the same random numbers every epoch (common random numbers: the RNGs are
seeded from ``seed`` alone for the validation pass and restored after it), so
that epoch-to-epoch changes of a stochastic objective's validation estimate
come from the parameters and not from fresh draws. Early stopping compares
those estimates; with fresh draws, the noise of a one-sample MIM estimate on a
small validation set stopped digits runs after 20-50 of 200 epochs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pyro
import torch
from pyro.infer.elbo import ELBOModule
from pyro.util import get_rng_state, set_rng_state
from torch import nn

from pyromim.data.batches import Batch, DataArg, batch_length, call_args
from pyromim.infer.errors import CompilationError, NonFiniteDataError
from pyromim.settings import LR_SCHEDULES
from pyromim.training.diagnostics import (
    NonFiniteLossError,
    describe_invalid_distribution,
    describe_nonfinite,
    is_invalid_distribution,
    nonfinite_terms,
)
from pyromim.training.params import StoreParameters
from pyromim.training.schedules import NoamFactor, beta_factor

logger = logging.getLogger(__name__)

#: The checkpoint entry saying that early stopping ended the run at the checkpoint's epoch.
STOPPED_KEY = "pyromim_should_stop"

#: The ``epoch`` entry of the validation pass's seed: no training epoch reaches it.
VALIDATION_EPOCH = 2**31 - 1


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 32-bit seed derived from ``(seed, epoch, rank)`` by NumPy's ``SeedSequence``."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class PyroLightningModule(pl.LightningModule):
    """Lightning training of ``elbo_module = loss(model, guide)``.

    :param elbo_module: the ``ELBOModule`` from ``loss(model, guide)``, its
        parameters already initialised by one call.
    :param store_params: param-store parameters owned by no module (see
        :class:`pyromim.training.params.StoreParameters`).
    :param lr: Adam base learning rate.
    :param warmup_epochs: epochs of ``beta`` warm-up (0: none).
    :param lr_schedule: ``"noam"`` (warm-up then ``1/sqrt`` decay) or ``"constant"``.
    :param lr_warmup_epochs: Noam warm-up length in epochs (default: ``warmup_epochs``).
    :param seed: base seed of the per-epoch reseeding.
    :param owners: modules owning the model and guide methods (their buffers
        must follow the parameters to the device).
    :param data_arg: position or key of the data argument in tuple/dict
        batches (default: the first tensor); it gives the batch size ``B``.
    """

    def __init__(
        self,
        elbo_module: ELBOModule,
        store_params: StoreParameters,
        *,
        lr: float = 1e-3,
        warmup_epochs: int = 0,
        lr_schedule: str = "noam",
        lr_warmup_epochs: int | None = None,
        seed: int = 0,
        owners: Sequence[nn.Module] = (),
        data_arg: DataArg = None,
    ) -> None:
        super().__init__()
        self.data_arg = data_arg
        # Modules whose methods are the model and guide (``vae.model``): held
        # here so Lightning moves their buffers (e.g. a prior's fixed loc) to
        # the training device with the parameters.
        self.owners = nn.ModuleList(owners)
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(map(repr, LR_SCHEDULES))}, got {lr_schedule!r}")
        self.elbo_module = elbo_module
        self.store_params = store_params
        self.lr = lr
        self.warmup_epochs = warmup_epochs
        self.lr_schedule = lr_schedule
        self.lr_warmup_epochs = warmup_epochs if lr_warmup_epochs is None else lr_warmup_epochs
        self.seed = seed
        loss = elbo_module.elbo
        # the objective the warm-up leads to, and the one validation measures
        self.target_beta = getattr(loss, "beta", None)
        self.target_symmetric = getattr(loss, "symmetric", None)
        #: plain data stored in every checkpoint under ``"pyromim_run"`` (see :func:`pyromim.training.fit`)
        self.run_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ objective

    @property
    def loss_object(self) -> Any:
        """The Pyro loss (``Trace_ELBO``, ``Trace_MIM`` ...)."""
        return self.elbo_module.elbo

    def set_warmup(self, epoch: int) -> float:
        """Set ``beta`` and ``symmetric`` on the loss for 1-based ``epoch``; return the factor."""
        factor = beta_factor(epoch, self.warmup_epochs)
        loss = self.loss_object
        if self.target_beta is not None:
            loss.beta = self.target_beta * factor
        if self.target_symmetric is not None:
            loss.symmetric = bool(self.target_symmetric) and factor >= 1.0
        return factor

    @contextmanager
    def target_objective(self) -> Iterator[None]:
        """Temporarily set the loss to its target ``beta``/``symmetric``."""
        loss = self.loss_object
        saved = {k: getattr(loss, k) for k in ("beta", "symmetric") if hasattr(loss, k)}
        if self.target_beta is not None:
            loss.beta = self.target_beta
        if self.target_symmetric is not None:
            loss.symmetric = self.target_symmetric
        try:
            yield
        finally:
            for key, value in saved.items():
                setattr(loss, key, value)

    def _loss(self, args: tuple, kwargs: dict) -> torch.Tensor:
        """The objective on a batch's arguments; a compiled loss that cannot compile the
        programs (a :class:`~pyromim.infer.CompilationError`, raised before any
        draw) falls back to its Python path for the rest of the run."""
        try:
            return self.elbo_module(*args, **kwargs)
        except CompilationError as err:
            logger.warning("%s: training with the Python loss instead", err)
            self.loss_object.compile = False
            return self.elbo_module(*args, **kwargs)

    def _objective(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        reported: list[str] = []
        args, kwargs = call_args(batch)
        try:
            loss = self._loss(args, kwargs) / batch_length(batch, self.data_arg)
            finite = bool(torch.isfinite(loss.detach()).all())
        except NonFiniteLossError as err:  # Trace_MIM names the term itself
            loss, finite, reported = torch.tensor(float("nan")), False, [str(err)]
        except ValueError as err:
            # a diverging network hands a distribution NaN/inf: torch refuses it with a tensor dump
            if isinstance(err, NonFiniteDataError) or not is_invalid_distribution(err):
                raise
            params = list(zip(self.store_params.names, self.store_params.params)) + [
                (name.removeprefix("owners.0."), p)
                for name, p in self.named_parameters()
                if not name.startswith("store_params.")
            ]
            loss, finite, reported = torch.tensor(float("nan")), False, [describe_invalid_distribution(err, params)]
        if self.trainer.world_size > 1:
            # every process must stop at the same step, or the others wait forever
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            terms = reported or nonfinite_terms(self.elbo_module.model, self.elbo_module.guide, *args, **kwargs)
            # the unmonitored checkpoint callback holds the latest epoch's file
            last = next(
                (
                    getattr(cb, "best_model_path", "")
                    for cb in self.trainer.checkpoint_callbacks
                    if getattr(cb, "monitor", "") is None
                ),
                "",
            )
            raise NonFiniteLossError(
                describe_nonfinite(
                    type(self.loss_object).__name__,
                    loss.detach().item(),
                    self.current_epoch + 1,
                    batch_idx,
                    terms,
                    last,
                    "validation" if self.trainer.validating else "training",
                )
            ) from None
        return loss

    # ------------------------------------------------------------------ Lightning hooks

    def on_train_epoch_start(self) -> None:
        pyro.set_rng_seed(epoch_seed(self.seed, self.current_epoch, self.global_rank))
        self.set_warmup(self.current_epoch + 1)
        if self.target_beta is not None:
            self.log("beta", float(self.loss_object.beta), on_step=False, on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self._rng_outside_validation: dict[str, Any] | None = get_rng_state()
        pyro.set_rng_seed(epoch_seed(self.seed, VALIDATION_EPOCH, self.global_rank))

    def on_validation_epoch_end(self) -> None:
        state = getattr(self, "_rng_outside_validation", None)
        if state is not None:
            set_rng_state(state)
            self._rng_outside_validation = None

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self._objective(batch, batch_idx)
        size = batch_length(batch, self.data_arg)
        # the epoch's mean per datum, summed here and logged once at the last batch:
        # Lightning's log call costs more than a small model's whole step
        weighted = loss.detach() * size
        if batch_idx == 0:
            self._train_total, self._train_items = weighted, 0
        else:
            self._train_total = self._train_total + weighted
        self._train_items += size
        if batch_idx == self.trainer.num_training_batches - 1:
            mean = self._train_total / self._train_items
            self.log("train_loss", mean, on_step=False, on_epoch=True, batch_size=self._train_items, sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        with self.target_objective():
            loss = self._objective(batch, batch_idx).detach()
        size = batch_length(batch, self.data_arg)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        lr_config: dict[str, Any] = {"optimizer": optimizer}
        if self.lr_schedule == "noam":
            steps_per_epoch = math.ceil(self.trainer.estimated_stepping_batches / max(self.trainer.max_epochs or 1, 1))
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, NoamFactor(self.lr_warmup_epochs * steps_per_epoch)
            )
            lr_config["lr_scheduler"] = {"scheduler": scheduler, "interval": "step"}
        return lr_config

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pyro_param_names"] = list(self.store_params.names)
        if self.run_info:
            checkpoint["pyromim_run"] = self.run_info
        # early stopping decides before the epoch's checkpoints are written (Lightning runs
        # checkpoint callbacks last): a resume from this file must not train on
        checkpoint[STOPPED_KEY] = bool(self._trainer is not None and self.trainer.should_stop)
        # running-mean baselines of score-function estimators (Trace_MIM, kept in
        # Pyro's param store but outside the trained parameters): plain floats
        baselines = getattr(self.loss_object, "baselines", None)
        if isinstance(baselines, MutableMapping):
            checkpoint["loss_baselines"] = {str(k): float(v) for k, v in baselines.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("pyro_param_names", [])
        if list(saved) != list(self.store_params.names):
            raise ValueError(
                f"checkpoint holds Pyro parameters {saved} but this model/guide pair has "
                f"{self.store_params.names}; resume with the model and guide that wrote it"
            )
        if checkpoint.get(STOPPED_KEY) and self._trainer is not None:
            self.trainer.should_stop = True  # the run had ended: the fit loop starts no epoch
        if "loss_baselines" in checkpoint and isinstance(getattr(self.loss_object, "baselines", None), MutableMapping):
            self.loss_object.baselines.clear()
            self.loss_object.baselines.update(checkpoint["loss_baselines"])
