"""``run``: train one spec with one objective and seed, evaluate it, and write everything a run leaves.

A run directory ``out_dir`` receives (global rank 0 only for the last five)::

    spec.toml              the spec as trained (the [training] table holds the settings used)
    checkpoints/best.ckpt  lowest validation loss; checkpoints/last.ckpt: latest epoch (resume)
    metrics.csv            per-epoch train_loss, val_loss, beta, lr
    model.pt               the best parameters with the spec (pyromim.load_model reads it)
    metrics.json           pyromim.metrics.evaluate on the test part (KNN trained on the training part)
    run.json               objective, seed, data, sizes, epochs, timing, file names
    vocabulary.json        token data read from text only: their Vocabulary (evaluate_run reuses it)
    *.png                  plots (see pyromim.plots.make_run_plots)

Defaults come from the spec's ``[training]`` table, so ``run("toy4")`` is the
reference run of the MIM paper's toy experiment (symmetric MIM, batch 128,
Adam at 1e-3 with a Noam warm-up, beta warm-up over 3 epochs, early stopping
after 3 epochs without a better validation loss, at most 200 epochs, fresh
draws of 10,000 points per split).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyro
import torch

from pyromim._run_dir import check_run_directory, claim_run_directory
from pyromim.data import DataMismatchError, DataSplits
from pyromim.data.splits import DEFAULT_FRACTION, items_for_part
from pyromim.experiments.config import RunConfig
from pyromim.experiments.console import ProgressBar, quiet_lightning
from pyromim.experiments.datasets import prepare_data
from pyromim.experiments.hints import HINTS
from pyromim.experiments.report import write_json, write_text
from pyromim.infer.objectives import make_loss, objective_label, objective_name
from pyromim.models import CheckpointError, LatentVariableModel, build_model, save_model
from pyromim.models.memory import check_memory
from pyromim.specs import ModelSpec, TrainingSpec, resolve_spec
from pyromim.specs.toml_io import loads as toml_loads
from pyromim.specs.validation import to_dict
from pyromim.training import FitResult, fit, load_checkpoint
from pyromim.training.cluster import check_num_nodes
from pyromim.training.fit import CHECKPOINT_DIR, RUN_INFO_KEY
from pyromim.training.lightning_checkpoints import check_training_layout

logger = logging.getLogger(__name__)
T = TypeVar("T")

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
SPEC_FILE = "spec.toml"
#: The vocabulary of token data read from text, saved so that evaluation reads new text with the same ids.
VOCABULARY_FILE = "vocabulary.json"


def own_param_store(function: Callable[..., T]) -> Callable[..., T]:
    """Run ``function`` with an empty Pyro param store of its own, restoring the caller's afterwards.

    Runs then start from parameters initialised by their seed alone, and never
    read or change the parameters a caller keeps in Pyro's global store.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with pyro.get_param_store().scope():
            return function(*args, **kwargs)

    return wrapper


def run_directory(path: str | Path) -> Path:
    """The run directory ``path`` names: a directory itself, the folder holding the ``checkpoints/``
    folder of a training checkpoint (``RUN/checkpoints/last.ckpt``), or the folder of any other file
    (``RUN/model.pt``)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


@dataclass
class RunResult:
    """What :func:`run` produced.

    :ivar out_dir: the run directory.
    :ivar spec: the spec as trained (``[training]`` holds the settings used).
    :ivar objective: ``"elbo"``, ``"amim"`` or ``"mim"``.
    :ivar seed: the seed of data, initialisation and training.
    :ivar metrics: :func:`pyromim.metrics.evaluate`'s dict (``None`` when not evaluated,
        and in the extra processes of a multi-device run).
    :ivar fit: the :class:`pyromim.training.FitResult`.
    :ivar model: the trained model (best parameters loaded on global rank 0).
    :ivar data: the data splits used.
    :ivar plots: paths of the PNGs written.
    :ivar seconds: wall time of the whole call.
    """

    out_dir: Path
    spec: ModelSpec
    objective: str
    seed: int
    metrics: dict[str, float] | None
    fit: FitResult
    model: LatentVariableModel
    data: DataSplits
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def is_global_zero(self) -> bool:
        """``False`` in the extra processes of a multi-device run (they write nothing)."""
        return self.fit.is_global_zero


def _launcher_rank_zero() -> bool:
    # before Lightning starts, only extra processes it launched carry a non-zero rank
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def training_spec(
    spec: str | Path | ModelSpec, objective: str | None = None, **overrides: Any
) -> tuple[ModelSpec, str]:
    """The spec with ``[training]`` values replaced by the non-``None`` ``overrides``, and the objective.

    ``overrides`` are fields of :class:`pyromim.specs.TrainingSpec` (``epochs``,
    ``batch_size``, ``lr``, ``warmup_epochs``, ``patience``, ``q_x``).
    """
    base = resolve_spec(spec)
    name = objective_name(objective or base.training.objective)
    known = {f.name for f in dataclasses.fields(base.training)} - {"objective"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training settings {unknown}; the [training] table has {sorted(known)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    training = dataclasses.replace(base.training, objective=name, **changes)
    return dataclasses.replace(base, training=training).validate(f"spec '{base.name}'"), name


def check_run_preconditions(spec: ModelSpec, config: RunConfig, splits: DataSplits) -> None:
    """Refuse, before anything is written or trained, a run that could not finish.

    The training state and one batch must fit in memory (naming the key, see
    :func:`pyromim.models.memory.check_memory`), and the evaluation part must be
    large enough for every metric (KSG and 5-NN need more than 5 items).
    """
    batch = min(spec.training.batch_size, len(splits.train))
    check_memory(spec, batch_size=batch, training=True)
    part = splits.test or splits.val
    if not config.evaluate:
        return
    from pyromim.metrics.evaluate import evaluation_size_problem

    if part is None:
        needed = next(n for n in range(1, 2**16) if evaluation_size_problem(n) is None)
        raise DataMismatchError(
            f"{splits.train.name}: {len(splits.train)} item(s) and no test or validation part, but the metrics "
            f"need at least {needed} items in one; give a data file of at least {items_for_part(needed)} items "
            f"({DEFAULT_FRACTION:.0%} of them are kept for testing unless --test-fraction says otherwise) or, if --n-test/--n-val capped the parts, "
            f"raise a cap to {needed} or more, so that the run is not trained only to write no metrics"
        )

    labelled = part.labels is not None and splits.train.labels is not None
    problem = evaluation_size_problem(len(part), len(splits.train) if labelled else None)
    if problem is not None:
        key = "n_test" if splits.test is not None else "n_val"
        raise DataMismatchError(
            f"{part.name}: {problem}; give more data or a larger '{key}' (--{key.replace('_', '-')}), "
            f"so that the run is not trained only to fail in its evaluation"
        )


def _flat_spec(toml_text: str) -> dict[str, Any]:
    """``{"[table] key": value}`` of a spec's TOML text."""
    flat: dict[str, Any] = {}

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for key, value in table.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}.{key}" if prefix else key)
            else:
                flat[f"[{prefix}] {key}" if prefix else key] = value

    walk(toml_loads(toml_text), "")
    return flat


def spec_differences(old: str, new: str, ignore: tuple[str, ...] = ()) -> list[str]:
    """``"[table] key: old value -> new value"`` for each key that differs between two specs' TOML texts,
    except the ``[training]`` keys named in ``ignore``."""
    a, b = _flat_spec(old), _flat_spec(new)
    skipped = {f"[training] {key}" for key in ignore}
    # a [training] key that a spec written before the key existed lacks holds its default
    defaults = {f"[training] {key}": value for key, value in to_dict(TrainingSpec()).items()}
    return [
        f"{key}: {a.get(key, defaults.get(key))!r} -> {b.get(key, defaults.get(key))!r}"
        for key in sorted(a.keys() | b.keys())
        if key not in skipped and a.get(key, defaults.get(key)) != b.get(key, defaults.get(key))
    ]


def saved_run_info(checkpoint: str | Path) -> dict[str, Any]:
    """The settings :func:`run` stored in ``checkpoint`` (its checksum verified).

    :raises FileNotFoundError: no such file.
    :raises pyromim.models.CheckpointError: a damaged checkpoint, or one no run wrote.
    """
    return _saved(check_training_layout(checkpoint, load_checkpoint(checkpoint)), checkpoint)


def _saved(state: Mapping[str, Any], checkpoint: str | Path) -> dict[str, Any]:
    saved = state.get(RUN_INFO_KEY)
    if not isinstance(saved, Mapping) or not isinstance(saved.get("spec_toml"), str):
        raise CheckpointError(
            f"cannot resume from {checkpoint}: it records no run settings (not written by 'pyromim train' "
            "or pyromim.experiments.run); continue it with pyromim.training.fit(..., resume=...)"
        )
    return dict(saved)


@dataclass
class SavedRun:
    """The run a training checkpoint belongs to: what a resume continues.

    :ivar spec: the spec as trained (its ``[training]`` table holds the settings used).
    :ivar settings: the :class:`~pyromim.experiments.RunConfig` fields of the run
        (``objective``, ``seed``, ``inverse_h``, ``data``, ``data_options``, ``n_train``,
        ``n_val``, ``n_test``, and ``num_samples`` where the checkpoint records it).
    :ivar epochs_done: epochs finished and saved in the checkpoint.
    :ivar stopped: whether the run had stopped early (it trains no further).
    """

    spec: ModelSpec
    settings: dict[str, Any]
    epochs_done: int
    stopped: bool


def saved_run(checkpoint: str | Path) -> SavedRun:
    """The :class:`SavedRun` that wrote ``checkpoint``, so that ``run(saved.spec, **saved.settings,
    resume=checkpoint, out_dir=...)`` continues it with nothing repeated.

    :raises FileNotFoundError: no such file.
    :raises pyromim.models.CheckpointError: a damaged checkpoint, one no run wrote, or a run
        trained on data given in memory (which a checkpoint cannot name).
    """
    from pyromim.specs import SpecError
    from pyromim.training.module import STOPPED_KEY

    state = check_training_layout(checkpoint, load_checkpoint(checkpoint))
    info = _saved(state, checkpoint)
    try:
        spec = ModelSpec.from_toml(info["spec_toml"], where=f"{checkpoint}: the run's spec")
    except SpecError as err:
        raise CheckpointError(f"cannot resume from {checkpoint}: {err}") from None
    data = info.get("data")
    if data == "DataSplits":
        raise CheckpointError(
            f"cannot resume from {checkpoint} alone: the run trained on data given in memory; resume it "
            "from Python with run(..., data=<the same DataSplits>, resume=...)"
        )
    caps = info.get("caps") or {}
    settings = {
        "objective": info["objective"],
        "seed": info["seed"],
        "inverse_h": bool(info.get("inverse_h", False)),
        "data": None if data in (None, spec.data.dataset) else data,
        "data_options": dict(info.get("data_options") or {}) or None,
        **{key: caps.get(key) for key in ("n_train", "n_val", "n_test")},
    }
    if isinstance(info.get("num_samples"), int):
        settings["num_samples"] = info["num_samples"]
    return SavedRun(spec, settings, int(state.get("epoch", -1)) + 1, bool(state.get(STOPPED_KEY)))


def check_resume(checkpoint: str | Path, run_info: Mapping[str, Any]) -> None:
    """Refuse to resume from ``checkpoint`` unless it was written by a run of the same settings.

    ``run_info`` is what :func:`run` stores in its checkpoints (spec, objective,
    seed, data, caps, evaluation samples); every difference but the number of epochs
    (a resume may go on to more) and of evaluation samples is named.
    :raises FileNotFoundError: no such file.
    :raises pyromim.models.CheckpointError: a damaged checkpoint, one no run wrote, or other settings.
    """
    saved = saved_run_info(checkpoint)
    differences = [
        f"{key}: checkpoint {saved.get(key)!r}, now {value!r}"
        for key, value in run_info.items()
        if key not in ("spec_toml", "num_samples") and saved.get(key) != value
    ]
    differences += [
        f"spec {change}"
        for change in spec_differences(saved["spec_toml"], run_info["spec_toml"], ignore=("epochs", "objective"))
    ]
    if differences:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: it was trained with other settings ({'; '.join(differences)}); "
            "resume with the run's own spec and options (only the number of epochs may change), "
            "or start a new run in another output directory"
        )


def run_settings(spec: str | Path | ModelSpec, config: RunConfig) -> tuple[ModelSpec, str, dict[str, Any]]:
    """The spec as :func:`run` trains it, the objective, and the settings it stores in every
    checkpoint (plain JSON data; a resume must match them, see :func:`check_resume`)."""
    c = config
    spec, objective = training_spec(spec, c.objective, **c.training_overrides())
    data_label = (
        str(c.data) if isinstance(c.data, (str, Path)) else (spec.data.dataset if c.data is None else "DataSplits")
    )
    run_info = json.loads(
        json.dumps(
            {
                "spec_toml": spec.to_toml(),
                "objective": objective,
                "inverse_h": c.inverse_h,
                "seed": c.seed,
                "data": data_label,
                "data_options": dict(c.data_options or {}),
                "caps": {"n_train": c.n_train, "n_val": c.n_val, "n_test": c.n_test},
                "num_samples": c.num_samples,  # restored on resume, never compared (evaluation only)
            },
            default=str,
        )
    )
    return spec, objective, run_info


def _check_before_data(spec: ModelSpec, c: RunConfig, run_info: Mapping[str, Any], out_dir: Path) -> bool:
    """Every check of :func:`run` that needs no data, before the data are loaded or the model is built;
    whether the run continues one in ``out_dir`` itself."""
    if c.resume is not None:
        check_resume(c.resume, run_info)
    # a resume from another run's checkpoint claims out_dir as a new run does (never over a run unasked)
    continues_here = c.resume is not None and run_directory(c.resume).resolve() == out_dir.resolve()
    if _launcher_rank_zero():
        check_run_directory(out_dir, resume=continues_here, overwrite=c.overwrite)
    check_memory(spec, batch_size=1, training=True)  # the parameters alone; with a real batch once sizes are known
    check_num_nodes(c.num_nodes)
    return continues_here


def _run_data(spec: ModelSpec, c: RunConfig, model: LatentVariableModel) -> DataSplits:
    """The data splits :func:`run` trains on, checked against the spec and the run's needs; the model's
    likelihood given the training part's statistics where ``[data] standardize`` asks for them."""
    splits = prepare_data(
        spec,
        c.data,
        seed=c.seed,
        n_train=c.n_train,
        n_val=c.n_val,
        n_test=c.n_test,
        data_options=c.data_options,
        likelihood=model.likelihood,
    )
    check_run_preconditions(spec, c, splits)
    if spec.data.standardize:
        model.likelihood.set_data_statistics(splits.train.x)
        logger.info("standardising the data by the training part's mean and standard deviation ([data] standardize)")
    return splits


def _log_run_start(spec: ModelSpec, objective: str, seed: int, splits: DataSplits, out_dir: Path) -> None:
    """Log what :func:`run` is about to train, on which data, with which settings."""
    t = spec.training
    sizes = {k: len(v) for k, v in splits.parts().items()}
    logger.info(
        "spec %s: %s, seed %d, data %s (%s); up to %d epochs, batch %d, lr %g, warm-up %d, patience %s -> %s",
        spec.name,
        objective_label(objective),
        seed,
        splits.train.name.removesuffix(" (train)"),
        ", ".join(f"{k} {n}" for k, n in sizes.items()),
        t.epochs,
        t.batch_size,
        t.lr,
        t.warmup_epochs,
        t.patience or "off",
        out_dir,
    )
    for note in HINTS:
        hint = note(spec, objective)
        if hint:
            logger.info(hint)


def _write_run_inputs(out_dir: Path, spec: ModelSpec, splits: DataSplits) -> None:
    """Write the spec as trained and, for token data read from text, their vocabulary."""
    write_text(out_dir / SPEC_FILE, spec.to_toml())
    if splits.train.vocabulary is not None:
        splits.train.vocabulary.save(out_dir / VOCABULARY_FILE)


def _evaluation_hook(
    model: LatentVariableModel, splits: DataSplits, c: RunConfig
) -> Callable[[Any, Any], dict[str, float]] | None:
    """The function :func:`pyromim.training.fit` calls to evaluate the best model on the test part
    (the validation part without one); ``None`` when the run evaluates nothing."""
    evaluation_part = splits.test or splits.val
    if not c.evaluate or evaluation_part is None:
        return None

    def hook(model_fn: Any, guide_fn: Any) -> dict[str, float]:
        from pyromim.metrics import evaluate as evaluate_metrics

        model.eval()
        logger.info(
            "evaluating on %s (%d items, %d importance samples for the NLL)",
            evaluation_part.name,
            len(evaluation_part),
            c.num_samples,
        )
        # seeded as evaluate_run seeds: a resumed run's metrics equal the uninterrupted run's
        pyro.set_rng_seed(c.seed)
        return evaluate_metrics(
            model_fn,
            guide_fn,
            evaluation_part.x,
            evaluation_part.labels,
            splits.train.x if splits.train.labels is not None and evaluation_part.labels is not None else None,
            splits.train.labels if evaluation_part.labels is not None else None,
            num_samples=c.num_samples,
        )

    return hook


def _write_run_outputs(outcome: RunResult, c: RunConfig) -> None:
    """Log how the training ended, then write the best model, the metrics and (``c.plots``) the plots."""
    result, model, spec, splits = outcome.fit, outcome.model, outcome.spec, outcome.data
    how = "stopped early" if result.stopped_early else "finished"
    logger.info(
        "%s after %d epochs; best %s %.4f",
        how,
        result.epochs_completed,
        "val_loss" if splits.val is not None else "train_loss",
        result.best_score if result.best_score is not None else float("nan"),
    )
    model.eval()
    save_model(model, outcome.out_dir / MODEL_FILE)
    if outcome.metrics is not None:
        write_json(outcome.out_dir / METRICS_FILE, outcome.metrics)
    if c.plots:
        from pyromim.plots import make_run_plots

        with torch.no_grad():
            outcome.plots = make_run_plots(
                model,
                spec,
                splits,
                outcome.out_dir,
                history=result.history,
                metrics_csv=result.metrics_csv,
                warmup_epochs=spec.training.warmup_epochs if outcome.objective != "elbo" else 0,
                title=f"{spec.name}, {objective_label(outcome.objective)}, seed {outcome.seed}",
            )


def _run_record(outcome: RunResult, c: RunConfig, run_info: Mapping[str, Any]) -> dict[str, Any]:
    """What ``run.json`` records of a finished run."""
    result, vocabulary = outcome.fit, outcome.data.train.vocabulary
    return {
        "spec": outcome.spec.name,
        "objective": outcome.objective,
        "inverse_h": c.inverse_h,
        "seed": outcome.seed,
        "data": run_info["data"],
        "data_options": dict(c.data_options or {}),
        "sizes": {k: len(v) for k, v in outcome.data.parts().items()},
        "caps": run_info["caps"],
        "training": dataclasses.asdict(outcome.spec.training),
        "epochs_completed": result.epochs_completed,
        "stopped_early": result.stopped_early,
        "best_score": result.best_score,
        "resumed_from": c.resume,
        "devices": c.devices,
        "strategy": c.strategy,
        "num_samples": c.num_samples,
        "vocabulary": None
        if vocabulary is None
        else {"file": VOCABULARY_FILE, "size": len(vocabulary), "checksum": vocabulary.checksum},
        "seconds": round(outcome.seconds, 2),
        "files": sorted(p.name for p in outcome.plots)
        + [SPEC_FILE, MODEL_FILE]
        + ([METRICS_FILE] if outcome.metrics is not None else [])
        + ([VOCABULARY_FILE] if vocabulary is not None else []),
    }


@own_param_store
def run(
    spec: str | Path | ModelSpec,
    config: RunConfig | None = None,
    *,
    out_dir: str | Path,
    callbacks: Sequence[Any] = (),
    **settings: Any,
) -> RunResult:
    """Train ``spec`` on its data, evaluate on the test part, write the run directory.

    :param spec: a catalogue name (``"toy4"``), a ``.toml`` path or a :class:`ModelSpec`.
    :param config: the run's settings, a :class:`~pyromim.experiments.RunConfig`
        (objective, ``[training]`` overrides, seed, data and caps, devices, outputs);
        default: every field's default, so the spec's own ``[training]`` values.
    :param out_dir: the run directory.
    :param callbacks: extra Lightning callbacks for the training (e.g. the one
        :meth:`pyromim.experiments.console.ProgressBar.start_run` returns).
    :param settings: :class:`~pyromim.experiments.RunConfig` fields by name, overriding
        ``config``'s (``run("toy4", out_dir=..., objective="elbo", epochs=5, seed=2)``).

    With ``progress`` (the default) one bar counts the epochs (Lightning's own bar is
    not used); Lightning's banner and notices are not printed unless the ``pyromim``
    logger is set to ``DEBUG`` (see :mod:`pyromim.experiments.console`).

    The data (``data``, default the spec's ``[data] dataset``) are rejected before
    training, naming both, if they do not fit the spec's likelihood or input shape
    (see :func:`pyromim.experiments.prepare_data`). ``devices=2, strategy="ddp"``
    runs two processes (Lightning re-launches the calling script for the extra
    ones, so call from a script or the command line).
    """
    c = (config or RunConfig()).replace(**settings)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    spec, objective, run_info = run_settings(spec, c)
    seed = c.seed
    t = spec.training
    continues_here = _check_before_data(spec, c, run_info, out_dir)
    pyro.set_rng_seed(seed)  # the networks' initial weights come from the global RNG
    model = build_model(spec)
    splits = _run_data(spec, c, model)
    loss = make_loss(objective, model, q_x=t.q_x, inverse_h=c.inverse_h)
    _log_run_start(spec, objective, seed, splits, out_dir)
    # the launcher's process holds the directory; the extra processes of a multi-device run write nothing there
    claim = (
        claim_run_directory(out_dir, resume=continues_here, overwrite=c.overwrite)
        if _launcher_rank_zero()
        else contextlib.nullcontext()
    )
    with claim:
        if _launcher_rank_zero():
            _write_run_inputs(out_dir, spec, splits)
        hook = _evaluation_hook(model, splits, c)
        # the run directory already holds spec.toml, which Lightning's CSV logger warns about (quiet_lightning)
        with quiet_lightning(), ProgressBar(t.epochs, enabled=c.progress) as bar:
            ticks = bar.start_run(f"{spec.name}, {objective_label(objective)}, seed {seed}", t.epochs)
            result = fit(
                model.model,
                model.guide,
                loss,
                splits.train,
                splits.val,
                c.train_config(t),
                out_dir=out_dir,
                evaluate=hook,
                callbacks=[*callbacks, ticks],
                run_info=run_info,
            )
        outcome = RunResult(out_dir, spec, objective, seed, result.evaluation, result, model, splits)
        if not result.is_global_zero:
            return outcome
        _write_run_outputs(outcome, c)
        outcome.seconds = time.perf_counter() - start
        write_json(out_dir / RUN_FILE, _run_record(outcome, c, run_info), checksum=True)
        logger.info("wrote %s", out_dir)
        return outcome
