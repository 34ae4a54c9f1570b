"""pyromim.experiments: run, evaluate_run, compare and summarise on tiny data (seconds each)."""

import json
import math

import numpy as np
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyromim import Trace_MIM, build_model, load_model
from pyromim.data import DataMismatchError, toy4
from pyromim.experiments import (
    OBJECTIVES,
    compare,
    compared_objectives,
    evaluate_run,
    make_loss,
    objective_name,
    prepare_data,
    run,
    summarise,
    training_spec,
)
from pyromim.metrics import EVALUATE_KEYS
from pyromim.specs import ModelSpec, SpecError, resolve_spec

TINY = dict(epochs=2, n_train=256, n_val=128, n_test=128, num_samples=20, progress=False)


class FitCalled(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """Record what run() would train with, and stop before training."""
    seen = {}

    def fake_fit(model, guide, loss, train, val, config, **kwargs):
        seen.update(loss=loss, train=train, val=val, **vars(config), **kwargs)
        raise FitCalled

    monkeypatch.setattr("pyromim.experiments.runner.fit", fake_fit)
    return seen


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    return run("toy4", out_dir=out, **TINY)


# ---------------------------------------------------------------- objectives and defaults


def test_objective_names_and_losses():
    model = build_model("toy4")
    assert tuple(OBJECTIVES) == ("elbo", "amim", "mim", "mim_score", "mim_score_loo", "mim_encoder_side")
    assert compared_objectives() == ("elbo", "amim", "mim")
    assert make_loss("mim_score", model).decoder_gradient == "score"
    assert make_loss("mim_score", model).score_baseline == "running_mean"
    loo = make_loss("mim_score_loo", model)
    assert loo.decoder_gradient == "score" and loo.score_baseline == "leave_one_out" and loo.symmetric
    held = make_loss("mim_encoder_side", model)
    assert held.guide_gradient == "encoder_side" and held.symmetric and held.decoder_gradient == "detach"
    assert make_loss("mim", model).guide_gradient == "both"
    assert make_loss("mim", model).decoder_gradient == "detach"
    assert objective_name("ELBO") == "elbo"
    with pytest.warns(DeprecationWarning, match="'elbo'"):
        assert objective_name("VAE") == "elbo"
    assert type(make_loss("elbo", model)) is Trace_ELBO
    amim, mim = make_loss("amim", model, q_x="data"), make_loss("mim", model)
    assert isinstance(amim, Trace_MIM) and amim.symmetric is False and amim.q_x == "data"
    assert mim.symmetric is True and mim.q_x == "marginal" and mim.beta == 1.0
    with pytest.raises(ValueError, match="only works with the 'amim'"):
        make_loss("mim", model, q_x="data")
    with pytest.raises(ValueError, match="marginal_components > 0"):
        make_loss("mim", model, q_x="learned")
    with pytest.raises(ValueError, match="unknown objective 'sgd'"):
        objective_name("sgd")


def test_run_defaults_are_the_spec_reference_settings(tmp_path, no_training):
    # `train toy4` with no flags: the MIM paper's reference run (symmetric MIM,
    # batch 128, lr 1e-3, 3 warm-up epochs, patience 3, up to 200 epochs, 10,000 points per split)
    with pytest.raises(FitCalled):
        run("toy4", out_dir=tmp_path)
    loss = no_training["loss"]
    assert isinstance(loss, Trace_MIM) and loss.symmetric is True and loss.q_x == "marginal"
    expected = dict(epochs=200, batch_size=128, lr=1e-3, warmup_epochs=3, patience=3, seed=0)
    assert {k: no_training[k] for k in expected} == expected
    assert (len(no_training["train"]), len(no_training["val"])) == (10_000, 10_000)
    written = ModelSpec.load(tmp_path / "spec.toml")
    assert written == resolve_spec("toy4")


def test_overrides_go_into_the_written_spec(tmp_path, no_training):
    with pytest.raises(FitCalled):
        run("toy4", out_dir=tmp_path, objective="elbo", epochs=7, lr=3e-4, patience=0)
    assert type(no_training["loss"]) is Trace_ELBO
    assert no_training["patience"] is None  # 0 turns early stopping off
    t = ModelSpec.load(tmp_path / "spec.toml").training
    assert (t.objective, t.epochs, t.lr) == ("elbo", 7, 3e-4)  # one word for the ELBO, in the spec too
    with pytest.raises(TypeError, match="unknown training settings"):
        training_spec("toy4", momentum=0.9)


def test_unknown_spec_suggests_the_nearest_name(tmp_path):
    with pytest.raises(SpecError, match="did you mean 'toy4'"):
        run("toy5", out_dir=tmp_path)


# ---------------------------------------------------------------- data checks before training


def test_grey_data_rejected_for_a_bernoulli_spec_before_training(tmp_path, no_training):
    path = tmp_path / "grey.npy"
    np.save(path, np.random.default_rng(0).random((50, 64)).astype(np.float32))
    with pytest.raises(DataMismatchError) as err:
        run("digits_normal", out_dir=tmp_path / "out", data=path)
    message = str(err.value)
    assert "spec 'digits_normal'" in message and "bernoulli" in message and "grey.npy" in message
    assert "binarise" in message  # says what to do
    assert not no_training  # fit never called


def test_wrong_item_shape_rejected_naming_both_shapes(tmp_path, no_training):
    path = tmp_path / "three.npy"
    np.save(path, np.zeros((40, 3), dtype=np.float32))
    with pytest.raises(DataMismatchError, match=r"spec 'toy4'.*\[2\].*three\.npy.*\(3,\)"):
        run("toy4", out_dir=tmp_path / "out", data=path)
    assert not no_training


def test_images_reshaped_to_the_spec_and_binarised(tmp_path):
    spec = resolve_spec("digits_normal")
    path = tmp_path / "images.npz"
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.random((60, 8, 8)), y=rng.integers(0, 10, 60))
    splits = prepare_data(spec, path, data_options={"binarize": 0.5}, seed=3)
    assert splits.train.event_shape == (64,) and splits.train.kind == "binary"
    assert sum(len(p) for p in splits.parts().values()) == 60
    assert splits.train.labels is not None


def test_caps_keep_the_first_items():
    spec = resolve_spec("toy4")
    full = toy4(seed=5)
    capped = prepare_data(spec, seed=5, n_train=100, n_val=0, n_test=10)
    assert len(capped.train) == 100 and capped.val is None and len(capped.test) == 10
    assert torch.equal(capped.train.x, full.train.x[:100])


# ---------------------------------------------------------------- a real (tiny) run


def test_run_writes_the_run_directory(toy_run):
    out = toy_run.out_dir
    for name in (
        "spec.toml",
        "model.pt",
        "metrics.json",
        "run.json",
        "metrics.csv",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "training_curves.png",
        "latent_space.png",
        "data_reconstructions.png",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(EVALUATE_KEYS)
    assert metrics == pytest.approx(toy_run.metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    info = json.loads((out / "run.json").read_text())
    assert info["objective"] == "mim" and info["epochs_completed"] == 2
    assert info["sizes"] == {"train": 256, "val": 128, "test": 128}
    # model.pt holds the trained (best) parameters
    loaded = load_model(out / "model.pt")
    x = toy_run.data.test.x[:5]
    assert torch.allclose(loaded.posterior(x)[0], toy_run.model.posterior(x)[0])


def test_repeated_runs_in_one_process_are_reproducible(toy_run, tmp_path):
    again = run("toy4", out_dir=tmp_path / "again", plots=False, **TINY)
    assert again.metrics == pytest.approx(toy_run.metrics, rel=1e-5)
    assert again.fit.best_score == pytest.approx(toy_run.fit.best_score, rel=1e-6)


def test_evaluate_run_from_model_file_and_from_checkpoint_agree(toy_run):
    from_dir = evaluate_run(toy_run.out_dir, num_samples=20)
    from_ckpt = evaluate_run(toy_run.out_dir / "checkpoints" / "best.ckpt", num_samples=20)
    assert from_dir.source.name == "model.pt" and from_ckpt.source.name == "best.ckpt"
    assert from_dir.n_items == 128  # the run's own caps and seed
    # best.ckpt and model.pt hold the same parameters and the RNG is seeded alike
    assert from_dir.metrics == pytest.approx(from_ckpt.metrics, rel=1e-6)
    assert from_dir.metrics["knn5_accuracy"] == pytest.approx(toy_run.metrics["knn5_accuracy"])
    assert from_dir.metrics["recon_error"] == pytest.approx(toy_run.metrics["recon_error"], rel=1e-6)


# ---------------------------------------------------------------- compare


def test_summarise_mean_and_sample_std():
    runs = [
        {"objective": "mim", "metrics": {"nll": 1.0, "knn5_accuracy": math.nan}},
        {"objective": "mim", "metrics": {"nll": 2.0, "knn5_accuracy": math.nan}},
        {"objective": "mim", "metrics": {"nll": 4.0, "knn5_accuracy": 0.5}},
        {"objective": "elbo", "metrics": {"nll": 3.0, "knn5_accuracy": 0.25}},
    ]
    s = summarise(runs, metrics=("nll", "knn5_accuracy"))
    assert s["mim"]["nll"]["mean"] == pytest.approx(7 / 3)
    # sample std by hand: deviations -4/3, -1/3, 5/3 -> (16 + 1 + 25) / 9 / 2
    assert s["mim"]["nll"]["std"] == pytest.approx(math.sqrt(42 / 18))
    assert s["mim"]["knn5_accuracy"] == {"mean": 0.5, "std": pytest.approx(math.nan, nan_ok=True), "n": 1}
    assert s["elbo"]["nll"]["n"] == 1 and math.isnan(s["elbo"]["nll"]["std"])


def test_compare_writes_table_json_markdown_and_figure(tmp_path):
    result = compare(
        "toy4",
        objectives=["elbo", "mim"],
        seeds=2,
        out_dir=tmp_path,
        **{**TINY, "epochs": 1, "n_train": 128, "n_val": 64, "n_test": 64},
    )
    assert [(r["objective"], r["seed"]) for r in result.runs] == [("elbo", 0), ("elbo", 1), ("mim", 0), ("mim", 1)]
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["objectives"] == ["elbo", "mim"] and saved["seeds"] == [0, 1]
    nll = [r["metrics"]["nll"] for r in saved["runs"] if r["objective"] == "mim"]
    assert saved["summary"]["mim"]["nll"]["mean"] == pytest.approx(np.mean(nll))
    assert saved["summary"]["mim"]["nll"]["std"] == pytest.approx(np.std(nll, ddof=1))
    markdown = (tmp_path / "compare.md").read_text()
    assert "| metric | VAE (ELBO) | MIM |" in markdown and "| mi_ksg |" in markdown
    assert "VAE (ELBO)" in result.table and "±" in result.table
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert (tmp_path / "mim" / "seed1" / "metrics.json").is_file()


def test_run_directory_and_seed_summary_helpers(tmp_path):
    from pyromim.experiments import run_directory, seed_summary

    (tmp_path / "checkpoints").mkdir()
    assert run_directory(tmp_path) == tmp_path
    assert run_directory(tmp_path / "checkpoints" / "last.ckpt") == tmp_path
    assert run_directory(tmp_path / "model.pt") == tmp_path
    s = seed_summary([1.0, 2.0, None, float("nan"), 4.0])
    assert (s["mean"], s["n"]) == (7 / 3, 3) and math.isclose(s["std"], np.std([1, 2, 4], ddof=1))
    assert math.isnan(seed_summary([1.0])["std"]) and math.isnan(seed_summary([])["mean"])


def test_run_has_a_param_store_of_its_own(tmp_path):
    import pyro

    keep = pyro.param("callers_own_param", torch.tensor(3.0))
    run("toy4", out_dir=tmp_path / "r", **{**TINY, "epochs": 1}, plots=False)
    assert list(pyro.get_param_store().keys()) == ["callers_own_param"]
    assert pyro.param("callers_own_param") is keep


def test_run_config_is_validated_and_changed_by_name(tmp_path, no_training):
    from pyromim.experiments import RunConfig

    config = RunConfig(epochs=7, lr=3e-4)
    assert config.replace(seed=3).seed == 3 and config.replace(seed=3).epochs == 7
    with pytest.raises(TypeError, match="unknown run setting 'epoch'; did you mean 'epochs'"):
        config.replace(epoch=3)
    with pytest.raises(SpecError, match=r"'n_train' must be an int in \[1, 2\*\*63 - 1\], got 0"):
        config.replace(n_train=0)
    with pytest.raises(SpecError, match="'objective': unknown objective 'sgd'"):
        config.replace(objective="sgd")
    # run takes the config, and keywords by the same names override it
    with pytest.raises(FitCalled):
        run("toy4", config, out_dir=tmp_path, objective="elbo", patience=0)
    assert type(no_training["loss"]) is Trace_ELBO and no_training["epochs"] == 7 and no_training["lr"] == 3e-4
    assert no_training["patience"] is None
