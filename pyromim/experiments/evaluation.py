"""``evaluate_run``: the metrics of a finished (or interrupted) run, on its own data or other data."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro

from pyromim.data import DataMismatchError, DataSplits, Vocabulary, VocabularyMismatchError
from pyromim.experiments.datasets import prepare_data
from pyromim.experiments.report import read_checked_json
from pyromim.experiments.runner import (
    MODEL_FILE,
    RUN_FILE,
    SPEC_FILE,
    VOCABULARY_FILE,
    own_param_store,
    run_directory,
    spec_differences,
)
from pyromim.infer.objectives import make_loss
from pyromim.metrics.ais import DEFAULT_CHAINS
from pyromim.models import CheckpointError, LatentVariableModel, build_model, load_model
from pyromim.specs import ModelSpec, SpecError
from pyromim.specs.toml_io import TOMLDecodeError
from pyromim.specs.toml_io import loads as toml_loads
from pyromim.training import load_checkpoint, load_trained
from pyromim.training.fit import CHECKPOINT_DIR, RUN_INFO_KEY
from pyromim.training.lightning_checkpoints import check_training_layout

logger = logging.getLogger(__name__)

SPLITS = ("test", "val", "train")


@dataclass
class EvaluationResult:
    """What :func:`evaluate_run` measured.

    :ivar metrics: :func:`pyromim.metrics.evaluate`'s dict.
    :ivar spec: the run's spec.
    :ivar source: the file the parameters came from.
    :ivar data_name: name of the evaluated data part.
    :ivar n_items: its size.
    """

    metrics: dict[str, float]
    spec: ModelSpec
    source: Path
    data_name: str
    n_items: int


def _spec_text(spec_file: Path) -> str:
    """The text of a run directory's ``spec.toml``, refused in one line when it is not a readable spec."""
    try:
        text = spec_file.read_text(encoding="utf-8")
        toml_loads(text)
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{spec_file}: not a spec file: byte {err.start} is not UTF-8 text; restore the run's spec"
        ) from None
    except TOMLDecodeError as err:
        raise SpecError(f"{spec_file}: not valid TOML ({err}); restore the run's spec") from None
    return text


def _run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    return read_checked_json(path) if path.is_file() else {}


def load_run_vocabulary(path: str | Path) -> Vocabulary | None:
    """The vocabulary a run on text saved (``vocabulary.json``), checked against its ``run.json``.

    :param path: a run directory, its ``model.pt`` or one of its checkpoints.
    :returns: ``None`` for a run that was not trained on text.
    :raises VocabularyMismatchError: the file is missing, damaged, or not the
        one the run recorded (size and checksum).
    """
    run_dir = run_directory(path)
    file = run_dir / VOCABULARY_FILE
    expected = _run_info(run_dir).get("vocabulary") or {}
    if not file.is_file():
        if expected:
            raise VocabularyMismatchError(
                f"{file}: missing, but the run recorded a vocabulary of {expected.get('size')} tokens; "
                f"restore the file from the run directory it was trained in"
            )
        return None
    vocabulary = Vocabulary.load(file)
    vocabulary.check(expected_size=expected.get("size"), expected_checksum=expected.get("checksum"), source=str(file))
    return vocabulary


@own_param_store
def load_run_model(path: str | Path) -> tuple[LatentVariableModel, Path, dict[str, Any]]:
    """The trained model of a run directory, ``model.pt`` file or Lightning checkpoint.

    Returns ``(model, file read, run.json contents or {})``.  A run directory is
    read from its ``model.pt`` (the best parameters), or, for a run that did not
    finish, from ``checkpoints/best.ckpt`` with its ``spec.toml``.  A ``.ckpt``
    file needs the ``spec.toml`` (and ``run.json`` for a non-default objective)
    of the run directory that holds its ``checkpoints/`` folder.  Nothing is
    unpickled beyond tensors and plain containers.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint")
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return load_model(path / MODEL_FILE), path / MODEL_FILE, _run_info(path)
        ckpt = path / CHECKPOINT_DIR / "best.ckpt"
        if not ckpt.is_file():
            raise FileNotFoundError(
                f"{path}: not a run directory (no {MODEL_FILE} and no {CHECKPOINT_DIR}/best.ckpt); "
                "give the directory a 'pyromim train' run wrote, or a checkpoint file"
            )
        path = ckpt
    if path.suffix != ".ckpt":
        return load_model(path), path, _run_info(run_directory(path))
    run_dir = run_directory(path)
    info = _run_info(run_dir)
    # a run's checkpoints carry its spec and objective (checksummed); others need spec.toml
    saved = check_training_layout(path, load_checkpoint(path)).get(RUN_INFO_KEY)
    spec_file = run_dir / SPEC_FILE
    if isinstance(saved, dict) and isinstance(saved.get("spec_toml"), str):
        spec = ModelSpec.from_toml(saved["spec_toml"], where=f"{path} (embedded spec)")
        objective = str(saved.get("objective", spec.training.objective))
        if spec_file.is_file():  # an edited spec.toml is not silently ignored
            changed = spec_differences(saved["spec_toml"], _spec_text(spec_file), ignore=("epochs",))
            if changed:
                raise CheckpointError(
                    f"{path}: its weights do not fit the spec in {spec_file} ({'; '.join(changed)}); the spec was "
                    f"changed after training: restore it, or evaluate the run's {MODEL_FILE}, which holds its own spec"
                )
    else:
        if not spec_file.is_file():
            raise FileNotFoundError(
                f"{path}: a training checkpoint holds no spec; expected {spec_file} next to its "
                f"{CHECKPOINT_DIR}/ folder"
            )
        spec = ModelSpec.load(spec_file)
        objective = info.get("objective", spec.training.objective)
    model = build_model(spec)
    if spec.data.standardize:  # placeholders: load_trained restores the checkpoint's statistics
        model.likelihood.data_statistics_set.fill_(True)
    loss = make_loss(objective, model, q_x=spec.training.q_x)
    try:
        load_trained(model.model, model.guide, loss, path, model.sample(2))
    except RuntimeError as err:
        if "size mismatch" not in str(err) and "key(s) in state_dict" not in str(err):
            raise
        detail = next(
            (line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err).splitlines()[0]
        )
        raise CheckpointError(
            f"{path}: its weights do not fit the spec in {spec_file} ({detail.rstrip('.')}); the spec was changed "
            f"after training: restore it, or evaluate the run's {MODEL_FILE}, which holds its own spec"
        ) from None
    return model, path, info


def _evaluation_data(
    spec: ModelSpec,
    model: LatentVariableModel,
    source: Path,
    info: Mapping[str, Any],
    data: str | Path | DataSplits | None,
    data_options: Mapping[str, Any] | None,
    split: str,
    seed: int | None,
    n_train: int | None,
    n_test: int | None,
) -> DataSplits:
    """The data :func:`evaluate_run` evaluates on (its arguments by the same names; ``info``: the run's
    ``run.json``): the run's own data, caps and vocabulary unless others are given."""
    if data is None and info.get("data") not in (None, "DataSplits"):
        data = info["data"]
        data_options = data_options or info.get("data_options") or None
    vocabulary = load_run_vocabulary(source)
    if isinstance(data, (str, Path)) and str(data).endswith((".txt", ".txt.gz")) and vocabulary is not None:
        data_options = {"vocabulary": vocabulary, **dict(data_options or {})}
    caps = info.get("caps", {}) if data is None or data == info.get("data") else {}
    n_train = n_train if n_train is not None else caps.get("n_train")
    n_part = n_test if n_test is not None else caps.get(f"n_{split}")
    part_caps = {"n_train": n_train}
    if split != "train":
        part_caps[f"n_{split}"] = n_part
    return prepare_data(
        spec,
        data,
        seed=seed if seed is not None else int(info.get("seed", 0)),
        data_options=data_options,
        likelihood=model.likelihood,
        **part_caps,
    )


@own_param_store
def evaluate_run(
    path: str | Path,
    *,
    data: str | Path | DataSplits | None = None,
    data_options: Mapping[str, Any] | None = None,
    split: str = "test",
    seed: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    num_samples: int = 1000,
    nll_refit_steps: int | None = None,
    nll_ais_steps: int = 0,
    nll_ais_chains: int = DEFAULT_CHAINS,
    keys: Sequence[str] | None = None,
) -> EvaluationResult:
    """Evaluate the model of a run (see :func:`load_run_model`) with :func:`pyromim.metrics.evaluate`.

    :param data: default: the run's own data (from its ``run.json``, else the
        spec's data set), split with the run's seed; a built-in name or a file
        is checked against the spec before evaluation.
    :param split: the part to evaluate, ``"test"``, ``"val"`` or ``"train"``;
        KNN accuracy is trained on the training part.
    :param seed: split seed (default: the run's).
    :param n_train: cap the training part (KNN; default: the run's own cap).
    :param n_test: cap the evaluated part (default: the run's own cap).
    :param nll_refit_steps: the NLL's proposal, as :func:`pyromim.metrics.evaluate` takes it
        (``None``: the guide, refitted proposals where its estimate is unreliable).
    :param nll_ais_steps: if > 0, the NLL by annealed importance sampling with this many
        temperatures and ``nll_ais_chains`` chains an item (see :func:`pyromim.metrics.evaluate`).
    :param keys: the metrics to compute (default: all that apply), as :func:`pyromim.metrics.evaluate` takes them.

    A run trained on text keeps its vocabulary (``vocabulary.json``): a text
    file evaluated here is read with it (unknown words become ``<unk>``), and
    data that bring another vocabulary are refused.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise SpecError(
            f"'num_samples' (importance samples per item for the NLL) must be an int >= 1, got {num_samples!r}"
        )
    from pyromim.metrics import evaluate as evaluate_metrics
    from pyromim.metrics.evaluate import evaluation_size_problem

    model, source, info = load_run_model(path)
    spec = model.spec
    assert spec is not None  # models built from specs, and so loaded from run directories, carry theirs
    splits = _evaluation_data(spec, model, source, info, data, data_options, split, seed, n_train, n_test)
    part = getattr(splits, split)
    expected = (info.get("vocabulary") or {}).get("checksum")
    if part is not None and part.vocabulary is not None and expected is not None:
        part.vocabulary.check(expected_checksum=expected, source=f"data {part.name!r}")
    if part is None:
        raise DataMismatchError(f"the data have no {split!r} part; choose another with --split (split= from Python)")
    model.eval()
    pyro.set_rng_seed(int(info.get("seed", 0)) if seed is None else seed)  # reproducible estimates
    logger.info("evaluating %s on %s (%d items)", source, part.name, len(part))
    with_labels = part.labels is not None and splits.train.labels is not None
    problem = evaluation_size_problem(len(part), len(splits.train) if with_labels else None, keys=keys)
    if problem is not None:
        raise DataMismatchError(f"{part.name}: {problem}; give more data or a larger --n-test")
    metrics = evaluate_metrics(
        model.model,
        model.guide,
        part.x,
        part.labels,
        splits.train.x if with_labels else None,
        splits.train.labels if with_labels else None,
        num_samples=num_samples,
        nll_refit_steps=nll_refit_steps,
        nll_ais_steps=nll_ais_steps,
        nll_ais_chains=nll_ais_chains,
        keys=keys,
    )
    return EvaluationResult(metrics, spec, source, part.name, len(part))
