"""One run's settings besides the spec: :class:`RunConfig`, validated like the spec and changed by name.

:func:`pyromim.experiments.run` and :func:`pyromim.experiments.compare` take a
``RunConfig`` and/or its fields as keywords (which override the config's);
the command line and the paper's sweeps set fields by the same names. The
``[training]`` fields left at ``None`` keep the spec's values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyromim.data import DataSplits
from pyromim.infer.objectives import Q_X_CHOICES, objective_name
from pyromim.specs import SpecError
from pyromim.specs.validation import MAX_INT, nearest

if TYPE_CHECKING:
    from pyromim.training.config import TrainConfig


def _flag(field: str) -> str:
    """`` (--field-name on the command line)``: the option that sets the run setting ``field``."""
    return f" (--{field.replace('_', '-')} on the command line)"


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run besides the spec.

    Training (``None``: the spec's ``[training]`` value): ``objective``
    (``"elbo"``, ``"amim"``, ``"mim"``), ``epochs``, ``batch_size``, ``lr``,
    ``warmup_epochs``, ``patience`` (epochs without a better validation loss;
    0 turns early stopping off), ``q_x``; ``inverse_h`` (the joint-entropy
    ablation); ``seed`` (data split, initialisation and training).

    Data: ``data`` (built-in name, file path or :class:`~pyromim.data.DataSplits`;
    default the spec's ``[data] dataset``), ``data_options`` (for files), caps
    ``n_train``, ``n_val``, ``n_test``.

    Devices (Lightning's): ``devices``, ``strategy``, ``accelerator``, ``num_nodes``;
    ``resume`` (``last.ckpt`` of an interrupted run of the same settings);
    ``overwrite`` (replace an earlier run in the output directory, which is otherwise refused).

    Speed: ``compile`` (train the MIM objectives with the compiled loss,
    :class:`~pyromim.JitTrace_MIM`; ``False`` for the Python one).

    Outputs: ``progress`` (bar), ``evaluate`` (``metrics.json``), ``num_samples``
    (importance samples per item for the NLL), ``plots`` (PNGs; needs matplotlib).
    """

    objective: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_epochs: int | None = None
    patience: int | None = None
    q_x: str | None = None
    inverse_h: bool = False
    seed: int = 0
    data: str | Path | DataSplits | None = None
    data_options: Mapping[str, Any] | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    devices: int | str = 1
    strategy: Any = "auto"
    accelerator: str = "auto"
    num_nodes: int = 1
    resume: str | Path | None = None
    overwrite: bool = False
    progress: bool = True
    compile: bool = True
    evaluate: bool = True
    num_samples: int = 1000
    plots: bool = True

    #: The fields that override the spec's ``[training]`` table.
    TRAINING_FIELDS = ("epochs", "batch_size", "lr", "warmup_epochs", "patience", "q_x")

    def validate(self, where: str = "run configuration") -> RunConfig:
        """Check every value; return ``self`` (raises :class:`~pyromim.specs.SpecError` naming the field)."""
        if self.objective is not None:
            try:
                objective_name(self.objective)
            except ValueError as err:
                raise SpecError(f"{where}: 'objective': {err}") from None
        at_least = {
            "epochs": 1,
            "batch_size": 1,
            "warmup_epochs": 0,
            "patience": 0,
            "n_train": 1,
            "n_val": 0,
            "n_test": 0,
            "num_samples": 1,
            "num_nodes": 1,
        }
        for key, low in at_least.items():
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT
            ):
                raise SpecError(f"{where}: '{key}' must be an int in [{low}, 2**63 - 1], got {value!r}{_flag(key)}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise SpecError(f"{where}: 'lr' must be > 0 and finite, got {self.lr!r}{_flag('lr')}")
        if self.q_x is not None and self.q_x not in Q_X_CHOICES:
            raise SpecError(f"{where}: 'q_x' = {self.q_x!r} is not one of: {', '.join(Q_X_CHOICES)}{_flag('q_x')}")
        if not (self.devices == "auto" or (isinstance(self.devices, int) and self.devices >= 1)):
            raise SpecError(f"{where}: 'devices' must be an int >= 1 or 'auto', got {self.devices!r}{_flag('devices')}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= 2**32 - 1:
            raise SpecError(
                f"{where}: 'seed' must be an int in [0, 2**32 - 1] (NumPy's and Pyro's range), got {self.seed!r}"
                f"{_flag('seed')}"
            )
        return self

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with the named fields changed (an unknown name raises :class:`TypeError`)."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in names:
                raise TypeError(f"unknown run setting {key!r}{nearest(key, names)}; the settings are {names}")
        return dataclasses.replace(self, **changes).validate()

    def train_config(self, training: Any) -> TrainConfig:
        """The :class:`~pyromim.training.TrainConfig` of a run whose spec's ``[training]`` table is ``training``.

        ``training`` already carries this config's overrides (see :meth:`training_overrides`);
        a spec's ``patience = 0`` means no early stopping.
        """
        from pyromim.training.config import TrainConfig  # the training extra (Lightning) only when a run starts

        return TrainConfig(
            epochs=training.epochs,
            batch_size=training.batch_size,
            lr=training.lr,
            warmup_epochs=training.warmup_epochs,
            patience=training.patience if training.patience > 0 else None,
            seed=self.seed,
            devices=self.devices,
            strategy=self.strategy,
            accelerator=self.accelerator,
            num_nodes=self.num_nodes,
            resume=self.resume,
            progress=False,  # run() shows its own bar (pyromim.experiments.console), not Lightning's
            compile=self.compile,
        )

    def training_overrides(self) -> dict[str, Any]:
        """The ``[training]`` values this config sets (the others stay the spec's)."""
        return {key: getattr(self, key) for key in self.TRAINING_FIELDS if getattr(self, key) is not None}


__all__ = ["RunConfig"]
