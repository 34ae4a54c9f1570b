"""Every training setting, declared once: :class:`TrainConfig`.

``fit(model, guide, loss, train, val, config, out_dir=...)`` takes one, and its
fields by name override it (``fit(..., config, out_dir=..., epochs=5)``), so a
script keeps one validated object instead of two dozen keywords.

Each field carries what every other place needs to know about it (its metadata,
read by :func:`setting_info`): the rule its values obey, its help text, its
command-line option and whether it is a key of a spec's ``[training]`` table.
:class:`pyromim.experiments.RunConfig` holds the fields a run sets,
:class:`pyromim.specs.TrainingSpec` holds the spec's keys (validated by the
same rules, see :func:`check_setting`) and the command line's options are made
from the fields, so no setting is declared, described or checked twice.

This module needs nothing but the standard library, so that the command line's
help is built from it without importing torch or Lightning.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Learning-rate schedules :class:`~pyromim.training.PyroLightningModule` knows.
LR_SCHEDULES = ("noam", "constant")

#: The largest integer TOML (and a C ``long``) holds.
_MAX_INT = 2**63 - 1
#: The largest seed NumPy and Pyro take.
_MAX_SEED = 2**32 - 1

#: Why a field is not a key of a spec's ``[training]`` table (what it says is how or where a
#: run trains, not what is trained).
_RUN_LEVEL = "how or where a run trains, not what is trained: a run's option, not a spec key"


def _setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    rule: str,
    low: int = 0,
    spec: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    group: str = "training",
    resumable: bool = False,
    not_in_spec: str = _RUN_LEVEL,
    cli: str | None = None,
) -> Any:
    """A :class:`TrainConfig` field with its metadata (see :func:`setting_info`)."""
    metadata = {
        "help": help,
        "rule": rule,
        "low": low,
        "spec": spec,
        "flag": flag,
        "metavar": metavar,
        "group": group,
        "resumable": resumable,
        "not_in_spec": None if spec else not_in_spec,
        "cli": cli,
    }
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (everything but the programs, the data and the output folder).

    :ivar epochs: maximum number of epochs (required).
    :ivar batch_size: items per optimiser step.
    :ivar lr: peak learning rate (Adam); ``0`` trains nothing (the parameters stay as initialised).
    :ivar warmup_epochs: epochs over which an objective's ``beta`` rises to its value;
        symmetric MIM's decoder-side samples switch on at the end of it.
    :ivar patience: stop after this many epochs without a better validation loss
        (``0`` or ``None``: never, read as ``None``); early stopping never happens during the warm-up.
    :ivar seed: seeds parameter initialisation, shuffling and every sample (``0 .. 2**32 - 1``).
    :ivar devices: passed to ``lightning.Trainer`` (an int ``>= 1`` or ``"auto"``), as are
        ``strategy``, ``accelerator`` and ``num_nodes``.
    :ivar resume: checkpoint to continue from (normally ``OUT/checkpoints/last.ckpt``).
    :ivar progress: show one progress bar over the epochs (on stderr; ``False``: none).
    :ivar verbose: print Lightning's own output instead: its banner and notices
        (``GPU available``, tips), its per-batch and validation bars, and the warnings
        pyromim otherwise drops as ones a user cannot act on (see
        ``pyromim.experiments.console.quiet_lightning``).
    :ivar lr_schedule: ``"noam"`` (warm-up then ``1/sqrt`` decay) or ``"constant"``.
    :ivar lr_warmup_epochs: the Noam warm-up's length (``None``: ``warmup_epochs``).
    :ivar restore_best: load the best checkpoint's parameters before the ``evaluate`` hook.
    :ivar clear_param_store: clear Pyro's global param store first (default: leave it
        as the caller has it, as :class:`pyro.infer.SVI` does).
    :ivar val_batch_size: items per validation batch (``None``: ``batch_size``). The
        objective is a mean per datum, so this changes no expectation, but the draws
        of validation's common random numbers differ; fewer, larger batches cost less
        (``benchmarks/bench_end_to_end.py``: validation from 25 % to 9 % of toy4's
        training time with one batch of 1000).
    :ivar compile: train a :class:`~pyromim.Trace_MIM` loss through its compiled
        counterpart :class:`~pyromim.JitTrace_MIM` (same settings, same draws, about
        2-3x faster steps on small models: ``python benchmarks/bench_trace_mim.py``); a pair that cannot be compiled falls back
        to the Python loss with a one-line notice. Other losses train as given.

    Every value is checked when the config is made (:class:`~pyromim.specs.SpecError`,
    a :class:`ValueError`, names the field and what it accepts).
    """

    epochs: int = _setting(help="maximum number of epochs", rule="int", low=1, spec=True, metavar="N", resumable=True)
    batch_size: int = _setting(128, help="items per optimisation step", rule="int", low=1, spec=True, metavar="B")
    lr: float = _setting(1e-3, help="peak learning rate of the Noam schedule", rule="float", spec=True, metavar="LR")
    warmup_epochs: int = _setting(
        0, help="epochs of beta (and learning-rate) warm-up", rule="int", spec=True, metavar="N"
    )
    patience: int | None = _setting(
        None, help="early stopping patience in epochs (0: off)", rule="int?", spec=True, metavar="N"
    )
    seed: int = _setting(
        0, help="seed of data split, initialisation and training (default 0)", rule="seed", group="data"
    )
    devices: int | str = _setting(
        1,
        help="number of devices (processes on CPU, GPUs where present), or 'auto'",
        rule="devices",
        metavar="N",
        group="devices",
        resumable=True,
    )
    strategy: Any = _setting(
        "auto", help="Lightning strategy, e.g. ddp (default auto)", rule="any", group="devices", resumable=True
    )
    accelerator: str = _setting(
        "auto", help="cpu, gpu, ... (default auto)", rule="str", group="devices", resumable=True
    )
    num_nodes: int = _setting(
        1, help="machines taking part (default 1)", rule="int", low=1, metavar="N", group="devices", resumable=True
    )
    resume: str | Path | None = _setting(
        None, help="checkpoint to continue from", rule="path?", group="own", cli="--resume (pyromim train)"
    )
    progress: bool = _setting(True, help="no progress bars", rule="bool", flag="--no-progress", group="output")
    verbose: bool = _setting(False, help="Lightning's own output", rule="bool", group="own", cli="-v/--verbose")
    lr_schedule: str = _setting(
        "noam", help="noam: warm-up, then 1/sqrt decay; constant: the peak rate throughout", rule="choice", spec=True
    )
    lr_warmup_epochs: int | None = _setting(
        None,
        help="epochs of the Noam learning-rate warm-up (default: --warmup-epochs)",
        rule="int?",
        spec=True,
        metavar="N",
    )
    restore_best: bool = _setting(
        True,
        help="evaluate the parameters of the best validation epoch rather than of the last",
        rule="bool",
        spec=True,
    )
    clear_param_store: bool = _setting(
        False,
        help="clear Pyro's param store first",
        rule="bool",
        group="own",
        not_in_spec="a run always trains in a param store of its own (pyromim.experiments.run)",
        cli="none: a run always trains in a param store of its own",
    )
    val_batch_size: int | None = _setting(
        None, help="items per validation batch (default: the batch size)", rule="int?", low=1, spec=True, metavar="B"
    )
    compile: bool = _setting(
        True,
        help="train the MIM objectives with the Python loss (Trace_MIM) instead of the compiled one (JitTrace_MIM)",
        rule="bool",
        flag="--no-compile",
    )

    def __post_init__(self) -> None:
        self.validate()
        if self.patience == 0:  # one meaning of "no early stopping"
            object.__setattr__(self, "patience", None)

    def validate(self) -> TrainConfig:
        """Check every value; return ``self`` (a :class:`~pyromim.specs.SpecError`, a :class:`ValueError`,
        names the field and what it accepts)."""
        for f in dataclasses.fields(self):
            check_setting(f.name, getattr(self, f.name), "TrainConfig")
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with the named fields changed (an unknown name raises :class:`TypeError`)."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [key for key in changes if key not in names]
        if unknown:
            raise TypeError(f"unknown training setting(s) {unknown}; TrainConfig's fields are {names}")
        return dataclasses.replace(self, **changes)


#: Every field of :class:`TrainConfig`, by name.
SETTINGS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainConfig)}

#: The fields a spec's ``[training]`` table holds (``objective`` and ``q_x`` are the spec's own).
SPEC_SETTINGS = tuple(name for name, f in SETTINGS.items() if f.metadata["spec"])

#: The choices of the fields that take one of a list.
CHOICES: dict[str, tuple[str, ...]] = {"lr_schedule": LR_SCHEDULES}


def setting_info(name: str) -> dict[str, Any]:
    """What :class:`TrainConfig` declares of its field ``name``: ``help``, ``rule``, ``spec`` (a
    ``[training]`` key), ``flag`` (its command-line option, default ``--name-with-dashes``),
    ``metavar``, ``group`` (of the command line's help), ``resumable`` (may change on resume),
    ``not_in_spec`` (why it is not a spec key), ``cli`` (where an option declared elsewhere is),
    ``default`` and ``choices``."""
    f = SETTINGS[name]
    info = dict(f.metadata)
    info["flag"] = info["flag"] or "--" + name.replace("_", "-")
    info["default"] = f.default
    info["choices"] = CHOICES.get(name)
    return info


def _problem(name: str, value: Any) -> str | None:
    """What ``value`` breaks of the rule of setting ``name`` (``None``: nothing)."""
    rule, low = SETTINGS[name].metadata["rule"], SETTINGS[name].metadata["low"]
    if rule.endswith("?") and value is None:
        return None
    if rule in ("int", "int?"):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_INT:
            return f"must be an int in [{low}, 2**63 - 1]"
    elif rule == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEED:
            return "must be an int in [0, 2**32 - 1] (NumPy's and Pyro's range)"
    elif rule == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            return "must be a finite number >= 0"
    elif rule == "devices":
        if not (value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)):
            return "must be an int >= 1 or 'auto'"
    elif rule == "choice":
        if value not in CHOICES[name]:
            return f"must be one of: {', '.join(CHOICES[name])}"
    elif rule == "bool":
        if not isinstance(value, bool):
            return "must be True or False"
    elif rule == "str":
        if not isinstance(value, str):
            return "must be a string"
    elif rule == "path?" and not isinstance(value, (str, Path)):
        return "must be a path or None"
    return None


def check_setting(name: str, value: Any, where: str, key: str | None = None, flag: bool = False) -> None:
    """Refuse a value of the :class:`TrainConfig` field ``name`` that breaks its rule.

    :param where: the source, first in the message (``"TrainConfig"``, a spec file, ``"run configuration"``).
    :param key: the name the message gives (default ``name``; a spec says ``"training.name"``).
    :param flag: whether the message also names the command-line option.
    :raises pyromim.specs.SpecError: naming the key, the rule and the value.
    """
    problem = _problem(name, value)
    if problem is not None:
        from pyromim.specs.validation import SpecError  # here: the command line's help imports this module

        hint = f" ({setting_info(name)['flag']} on the command line)" if flag else ""
        raise SpecError(f"{where}: '{key or name}' {problem}, got {value!r}{hint}")


__all__ = ["LR_SCHEDULES", "TrainConfig"]
