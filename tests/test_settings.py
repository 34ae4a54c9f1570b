"""Every training setting is declared once (TrainConfig) and reachable from a spec and the command line."""

from __future__ import annotations

import dataclasses

import pytest

from pyromim.experiments import RunConfig
from pyromim.settings import SETTINGS, SPEC_SETTINGS, setting_info
from pyromim.specs import SpecError, TrainingSpec, resolve_spec
from pyromim.training import TrainConfig

#: A value other than the default for each setting (what a spec or an option sets it to).
CHANGED = {
    "epochs": 5,
    "batch_size": 7,
    "lr": 0.5,
    "warmup_epochs": 2,
    "patience": 4,
    "seed": 3,
    "devices": "auto",
    "strategy": "ddp",
    "accelerator": "cpu",
    "num_nodes": 2,
    "progress": False,
    "lr_schedule": "constant",
    "lr_warmup_epochs": 6,
    "restore_best": False,
    "val_batch_size": 9,
    "compile": False,
}
#: Options each command declares itself, and why the others cannot be set from the command line.
DECLARED_ELSEWHERE = {"resume", "verbose", "clear_param_store"}


class FitCalled(Exception):
    pass


def test_run_config_declares_none_of_train_configs_fields():
    own = {f.name for f in dataclasses.fields(RunConfig)}
    assert own.isdisjoint(SETTINGS) and "train" in own
    # yet every one of them is a run setting, read by name as before
    config = RunConfig(epochs=7, lr=3e-4, seed=2)
    assert (config.epochs, config.lr, config.seed, config.batch_size, config.devices) == (7, 3e-4, 2, None, 1)
    assert set(RunConfig.settings()) == own - {"train"} | set(SETTINGS)


def test_every_setting_is_a_spec_key_or_says_why_not():
    spec_keys = {f.name for f in dataclasses.fields(TrainingSpec)}
    assert spec_keys == set(SPEC_SETTINGS) | {"objective", "q_x"}
    for name in SETTINGS:
        info = setting_info(name)
        assert info["spec"] == (name in SPEC_SETTINGS)
        assert info["spec"] or info["not_in_spec"], name


def test_a_specs_training_table_reaches_train_config():
    training = dataclasses.replace(TrainingSpec(), **{key: CHANGED[key] for key in SPEC_SETTINGS})
    config = RunConfig().train_config(training)
    assert {key: getattr(config, key) for key in SPEC_SETTINGS} == {key: CHANGED[key] for key in SPEC_SETTINGS}


def test_one_rule_and_one_error_type_for_a_spec_a_run_and_fit():
    for make in (
        lambda: TrainConfig(epochs=1, lr=-1.0),
        lambda: RunConfig(lr=-1.0),
        lambda: resolve_spec("toy4").replace(training=dataclasses.replace(TrainingSpec(), lr=-1.0)),
    ):
        with pytest.raises(SpecError, match=r"'(training\.)?lr' must be a finite number >= 0, got -1.0"):
            make()
    # 0 is "no early stopping" everywhere
    assert TrainConfig(epochs=1, patience=0).patience is None
    assert RunConfig().train_config(TrainingSpec(patience=0)).patience is None


def test_every_setting_is_reachable_from_the_command_line(tmp_path, monkeypatch):
    from pyromim.cli import main
    from pyromim.cli.checks import _run_config
    from pyromim.cli.parser import build_parser

    assert set(SETTINGS) - set(CHANGED) == DECLARED_ELSEWHERE
    for name in DECLARED_ELSEWHERE:
        assert setting_info(name)["cli"], name
    seen = {}

    def fake_fit(model, guide, loss, train, val, config, **kwargs):
        seen["config"] = config
        raise FitCalled

    monkeypatch.setattr("pyromim.experiments.runner.fit", fake_fit)
    for module in ("pyromim.training.cluster", "pyromim.experiments.runner"):  # two nodes, on one machine
        monkeypatch.setattr(f"{module}.check_num_nodes", lambda *args: None)
    argv = ["train", "toy4", "--out", str(tmp_path / "run"), "--n-train", "64", "--n-val", "32", "--n-test", "32"]
    for name, value in CHANGED.items():
        flag = setting_info(name)["flag"]
        if isinstance(value, bool):
            argv += [flag if flag.startswith("--no-") else f"--no-{flag[2:]}"]
        else:
            argv += [flag, str(value)]
    with pytest.raises(FitCalled):
        main(argv)
    reached = {name: getattr(seen["config"], name) for name in CHANGED if name != "progress"}
    assert reached == {name: value for name, value in CHANGED.items() if name != "progress"}
    # run() shows its own bar, never Lightning's: --no-progress turns off run()'s
    assert seen["config"].progress is False
    assert _run_config(build_parser().parse_args(["train", "toy4", "--no-progress"])).progress is False


def test_a_spec_written_before_a_training_key_existed_still_resumes():
    from pyromim.experiments.runner import spec_differences

    new = resolve_spec("toy4").to_toml()
    old = "\n".join(line for line in new.splitlines() if not line.startswith(("lr_schedule", "restore_best")))
    assert old != new and spec_differences(old, new) == []
    spec = resolve_spec("toy4")
    other = spec.replace(training=dataclasses.replace(spec.training, lr_schedule="constant")).to_toml()
    assert spec_differences(old, other) == ["[training] lr_schedule: 'noam' -> 'constant'"]
