"""Every setting of one :func:`~pyromim.training.fit` call: :class:`TrainConfig`.

``fit(model, guide, loss, train, val, config, out_dir=...)`` takes one, and its
fields by name override it (``fit(..., config, out_dir=..., epochs=5)``), so a
script keeps one validated object instead of two dozen keywords.
:class:`pyromim.experiments.RunConfig` builds one from a spec's ``[training]``
table and its own device and output settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Learning-rate schedules :class:`~pyromim.training.PyroLightningModule` knows.
LR_SCHEDULES = ("noam", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (everything but the programs, the data and the output folder).

    :ivar epochs: maximum number of epochs (required).
    :ivar batch_size: items per optimiser step.
    :ivar lr: peak learning rate (Adam).
    :ivar warmup_epochs: epochs over which an objective's ``beta`` rises to its value;
        symmetric MIM's decoder-side samples switch on at the end of it.
    :ivar patience: stop after this many epochs without a better validation loss
        (``None``: never); early stopping never happens during the warm-up.
    :ivar seed: seeds parameter initialisation, shuffling and every sample.
    :ivar devices: passed to ``lightning.Trainer``, as are ``strategy``, ``accelerator`` and ``num_nodes``.
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
        2-3x faster steps on small models); a pair that cannot be compiled falls back
        to the Python loss with a one-line notice. Other losses train as given.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: int = 0
    patience: int | None = None
    seed: int = 0
    devices: int | str = 1
    strategy: Any = "auto"
    accelerator: str = "auto"
    num_nodes: int = 1
    resume: str | Path | None = None
    progress: bool = True
    verbose: bool = False
    lr_schedule: str = "noam"
    lr_warmup_epochs: int | None = None
    restore_best: bool = True
    clear_param_store: bool = False
    val_batch_size: int | None = None
    compile: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every value; return ``self`` (a :class:`ValueError` names the field and what it accepts)."""
        at_least = {"epochs": 1, "batch_size": 1, "warmup_epochs": 0, "patience": 0, "num_nodes": 1}
        at_least["lr_warmup_epochs"] = 0
        at_least["val_batch_size"] = 1
        for key, low in at_least.items():
            value = getattr(self, key)
            if value is None and key in ("patience", "lr_warmup_epochs", "val_batch_size"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TrainConfig: {key!r} must be an int >= {low}, got {value!r}")
        if (
            isinstance(self.lr, bool)
            or not isinstance(self.lr, (int, float))
            or not (self.lr >= 0 and math.isfinite(self.lr))
        ):
            raise ValueError(f"TrainConfig: 'lr' must be a finite number >= 0, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"TrainConfig: 'seed' must be an int, got {self.seed!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainConfig: 'lr_schedule' must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.resume is not None and not isinstance(self.resume, (str, Path)):
            raise ValueError(f"TrainConfig: 'resume' must be a path or None, got {self.resume!r}")
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with the named fields changed (an unknown name raises :class:`TypeError`)."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [key for key in changes if key not in names]
        if unknown:
            raise TypeError(f"unknown training setting(s) {unknown}; TrainConfig's fields are {names}")
        return dataclasses.replace(self, **changes)


__all__ = ["LR_SCHEDULES", "TrainConfig"]
