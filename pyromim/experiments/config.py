"""One run's settings besides the spec: :class:`RunConfig`, validated like the spec and changed by name.

:func:`pyromim.experiments.run` and :func:`pyromim.experiments.compare` take a
``RunConfig`` and/or its fields as keywords (which override the config's);
the command line and the paper's sweeps set fields by the same names. The
``[training]`` fields left at ``None`` keep the spec's values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyromim.data import DataSplits
from pyromim.infer.objectives import Q_X_CHOICES, objective_name
from pyromim.settings import SETTINGS, SPEC_SETTINGS, check_setting
from pyromim.specs import SpecError
from pyromim.specs.validation import MAX_INT, nearest

if TYPE_CHECKING:
    from pyromim.settings import TrainConfig


def _flag(field: str) -> str:
    """`` (--field-name on the command line)``: the option that sets the run setting ``field``."""
    return f" (--{field.replace('_', '-')} on the command line)"


@dataclass(frozen=True, init=False)
class RunConfig:
    """Every setting of one run besides the spec.

    Training: any :class:`~pyromim.training.TrainConfig` field by name (``epochs``,
    ``batch_size``, ``lr``, ``warmup_epochs``, ``patience`` (0 turns early stopping
    off), ``lr_schedule``, ``lr_warmup_epochs``, ``restore_best``, ``val_batch_size``,
    ``seed`` (data split, initialisation and training), ``devices``, ``strategy``,
    ``accelerator``, ``num_nodes``, ``resume`` (``last.ckpt`` of an interrupted run
    of the same settings), ``progress`` (bar), ``compile`` (train the MIM objectives
    with the compiled loss, :class:`~pyromim.JitTrace_MIM`), ...), kept in ``train``
    and read as attributes (``config.epochs``). One left out, or ``None``, is the spec's
    ``[training]`` value where the spec has the key, else TrainConfig's default.
    Besides them: ``objective`` (``"elbo"``, ``"amim"``, ``"mim"``), ``q_x`` (``None``:
    the spec's); ``inverse_h`` (the joint-entropy ablation).

    Data: ``data`` (built-in name, file path or :class:`~pyromim.data.DataSplits`;
    default the spec's ``[data] dataset``), ``data_options`` (for files), caps
    ``n_train``, ``n_val``, ``n_test``.

    Outputs: ``overwrite`` (replace an earlier run in the output directory, which is
    otherwise refused), ``evaluate`` (``metrics.json``), ``num_samples`` (importance
    samples per item for the NLL), ``plots`` (PNGs; needs matplotlib).

    :ivar train: the :class:`~pyromim.training.TrainConfig` fields this run sets, by name.
    """

    objective: str | None = None
    q_x: str | None = None
    inverse_h: bool = False
    data: str | Path | DataSplits | None = None
    data_options: Mapping[str, Any] | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    overwrite: bool = False
    evaluate: bool = True
    num_samples: int = 1000
    plots: bool = True
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    #: The settings that override the spec's ``[training]`` table.
    TRAINING_FIELDS = (*SPEC_SETTINGS, "q_x")

    def __init__(self, train: Mapping[str, Any] | None = None, **settings: Any) -> None:
        """Every setting by name: this class's fields and :class:`~pyromim.training.TrainConfig`'s
        (``RunConfig(objective="elbo", epochs=7, lr=3e-4)``); checked at once."""
        own = {f.name: f for f in dataclasses.fields(RunConfig) if f.name != "train"}
        sets = dict(train or {})
        for key, value in settings.items():
            if key not in own and key not in SETTINGS:
                names = self.settings()
                raise TypeError(f"unknown run setting {key!r}{nearest(key, names)}; the settings are {names}")
            if key in SETTINGS:
                sets[key] = value
        for key, f in own.items():
            object.__setattr__(self, key, settings.get(key, f.default))
        object.__setattr__(self, "train", {key: value for key, value in sets.items() if value is not None})
        self.validate()

    def __getattr__(self, name: str) -> Any:
        """A :class:`~pyromim.training.TrainConfig` field: the value this run sets, else ``None``
        for a spec key (the spec's value), else TrainConfig's default."""
        if name in SETTINGS:
            default = None if name in SPEC_SETTINGS else SETTINGS[name].default
            return self.__dict__.get("train", {}).get(name, default)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def settings(cls) -> list[str]:
        """The names a run setting may have: this class's fields and TrainConfig's."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "train"] + list(SETTINGS)

    def validate(self, where: str = "run configuration") -> RunConfig:
        """Check every value; return ``self`` (raises :class:`~pyromim.specs.SpecError` naming the field)."""
        if self.objective is not None:
            try:
                objective_name(self.objective)
            except ValueError as err:
                raise SpecError(f"{where}: 'objective': {err}") from None
        at_least = {"n_train": 1, "n_val": 0, "n_test": 0, "num_samples": 1}
        for key, low in at_least.items():
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT
            ):
                raise SpecError(f"{where}: '{key}' must be an int in [{low}, 2**63 - 1], got {value!r}{_flag(key)}")
        if self.q_x is not None and self.q_x not in Q_X_CHOICES:
            raise SpecError(f"{where}: 'q_x' = {self.q_x!r} is not one of: {', '.join(Q_X_CHOICES)}{_flag('q_x')}")
        for key, value in self.train.items():
            check_setting(key, value, where, flag=True)
        return self

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with the named settings changed (an unknown name raises :class:`TypeError`;
        a training setting changed to ``None`` goes back to the spec's value or TrainConfig's default)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "train"}
        train = {**self.train, **{key: value for key, value in changes.items() if key in SETTINGS}}
        return RunConfig(
            train=train, **{**own, **{key: value for key, value in changes.items() if key not in SETTINGS}}
        )

    def train_config(self, training: Any) -> TrainConfig:
        """The :class:`~pyromim.training.TrainConfig` of a run whose spec's ``[training]`` table is ``training``.

        ``training`` already carries this config's overrides (see :meth:`training_overrides`);
        the settings a spec has no key for are this config's.
        """
        from pyromim.settings import TrainConfig

        spec_values = {key: getattr(training, key) for key in SPEC_SETTINGS}
        run_values = {key: value for key, value in self.train.items() if key not in SPEC_SETTINGS}
        # run() shows its own bar (pyromim.experiments.console), not Lightning's
        return TrainConfig(**{**spec_values, **run_values, "progress": False})

    def training_overrides(self) -> dict[str, Any]:
        """The ``[training]`` values this config sets (the others stay the spec's)."""
        return {key: getattr(self, key) for key in self.TRAINING_FIELDS if getattr(self, key) is not None}


__all__ = ["RunConfig"]
