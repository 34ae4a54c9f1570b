"""The strong-decoder comparison's own measurements: the generator's score of model draws,
the table's invalid-NLL marks, the sweep's ``extra`` hook and the step timing."""

import math

import pytest
import torch

from paper.strong_decoders import build_tasks, generator_scores, step_seconds, strong_table
from paper.sweep import SweepOptions, extra_measure, run_tasks, task_spec
from pyromim.data import SentenceGenerator
from pyromim.data.text import BOS, EOS
from pyromim.metrics.likelihood import UNRELIABLE_FRACTION as KHAT_LIMIT


def test_generator_scores_its_own_sentences_exactly_and_counts_the_rest_off_its_support():
    generator = SentenceGenerator()
    tokens, _, _ = generator.sample(300, seed=4)
    nll, share = generator_scores(generator, tokens)
    assert share == 1.0
    assert math.isclose(nll, generator.nll(tokens), rel_tol=1e-12)  # the exact likelihood, independently

    broken = tokens[:4].clone()
    broken[0, :] = tokens[0, 0]  # no <eos> at all: longer than any sentence the generator makes
    eos_at = int((broken[1] == EOS).nonzero()[0])
    broken[1, eos_at + 1 :] = tokens[1, 0]  # words after the <eos>
    broken[2, 0] = BOS  # an id the generator never emits
    broken[3, 0] = 10_000  # outside the vocabulary
    mixed = torch.cat([tokens, broken])
    nll_mixed, share_mixed = generator_scores(generator, mixed)
    assert math.isclose(share_mixed, 300 / 304)
    assert math.isclose(nll_mixed, nll, rel_tol=1e-12)  # the off-support rows change the share, not the mean
    none_nll, none_share = generator_scores(generator, broken)
    assert none_share == 0.0 and math.isnan(none_nll)


def test_a_sentence_with_a_word_of_the_wrong_kind_in_a_slot_is_off_the_support():
    generator = SentenceGenerator()
    tokens, _, _ = generator.sample(200, seed=5)
    # swap every content word for a function word: no slot pattern has a sentence of function words only
    content = generator.p_content[0, tokens] > 0  # every topic leaks some mass onto every content word
    function_word = int(generator.p_function[0].argmax())
    all_function = torch.where(content, torch.full_like(tokens, function_word), tokens)
    _, share = generator_scores(generator, all_function)
    assert share == 0.0


def _record(objective, seed, khat, nll=40.0):
    metrics = {"nll": nll, "psis_khat_bad_fraction": khat, "mi_aggregate": 1.0, "step_cost": 2.0}
    return {"spec": "sentences_gru", "objective": objective, "seed": seed, "metrics": metrics}


def test_the_table_marks_an_nll_invalid_when_any_seed_is_over_the_khat_limit():
    runs = [_record("elbo", s, 0.01) for s in (1, 2)] + [_record("mim", 1, 0.05), _record("mim", 2, KHAT_LIMIT + 0.01)]
    runs.append({"spec": "sentences_gru", "objective": "amim", "seed": 1, "error": "ValueError: boom"})
    runs.append({**_record("mim", 1, 0.02, nll=39.0), "variant": "no warm-up"})  # its own row and its own k-hat
    runs.append({**_record("mim_encoder_side", 1, 0.02), "variant": "no warm-up"})
    runs.append({**_record("elbo", 1, 0.02), "variant": "no warm-up"})
    table = strong_table(runs, "sentences_gru")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    # after the header, in the objectives' order, plain rows first
    assert list(rows)[1:] == [
        "VAE (ELBO)",
        "MIM",
        "VAE (ELBO), no warm-up",
        "MIM, no warm-up",
        "MIM (guide from the encoder side), no warm-up",
    ]
    assert "invalid" in rows["MIM"] and f"({KHAT_LIMIT + 0.01:.2f})" in rows["MIM"]
    assert "invalid" not in rows["VAE (ELBO)"] and "40.00 ± 0.00 (0.01)" in rows["VAE (ELBO)"]
    assert "invalid" not in rows["MIM, no warm-up"] and "39.00 ± 0.00 (0.02)" in rows["MIM, no warm-up"]
    assert "A-MIM" not in rows  # a failed run has no row
    assert strong_table(runs, "digits_pixelcnn") == ""  # a model with no runs has no table


def test_tasks_carry_each_models_settings_and_the_extra_measurements(tmp_path):
    tasks = build_tasks(SweepOptions(seeds=2), tmp_path)
    # ELBO, A-MIM, MIM and the further rows (one for sentences, two for images), per seed
    assert len(tasks) == (4 + 5) * 2
    further = [t for t in tasks if t.get("variant")]
    unwarmed = [t for t in further if t.get("warmup_epochs") == 0]
    assert len(unwarmed) == 2 * 2 and all(t["objective"] == "mim" and t["lr_schedule"] == "constant" for t in unwarmed)
    assert all(t["min_scale"] == math.exp(-3) for t in unwarmed if t["spec"] == "digits_pixelcnn")
    floored = [t for t in further if t["spec"] == "digits_pixelcnn" and t["objective"] == "amim"]
    assert len(floored) == 2 and all(t["min_scale"] == 0.15 for t in floored)
    assert task_spec(floored[0]).model.min_scale == 0.15  # the sweep applies the floor to the spec
    only = build_tasks(SweepOptions(seeds=2, flags=frozenset({"variants_only"})), tmp_path)
    assert only == further
    assert build_tasks(SweepOptions(seeds=2, flags=frozenset({"no_warmup_only"})), tmp_path) == unwarmed
    floors = build_tasks(SweepOptions(seeds=2, flags=frozenset({"floor_sweep"})), tmp_path)
    assert len(floors) == 2 * 2 and {t["spec"] for t in floors} == {"sentences_gru"}  # floors 0.2 and 0.1
    assert {(t["objective"], t["min_scale"], t["num_samples"]) for t in floors} == {
        ("amim", 0.2, 1000),
        ("amim", 0.1, 1000),
    }
    assert task_spec(floors[1]).model.min_scale == floors[1]["min_scale"]
    held = build_tasks(SweepOptions(seeds=2, flags=frozenset({"encoder_side"})), tmp_path)
    assert sorted((t["spec"], t["objective"], t["seed"]) for t in held) == [
        (spec, o, seed)
        for spec, objectives in (
            ("digits_pixelcnn", ("elbo", "mim_encoder_side")),
            ("sentences_gru", ("amim", "elbo", "mim_encoder_side")),
        )
        for o in objectives
        for seed in (1, 2)
    ]
    assert all(t["warmup_epochs"] == 0 and t["lr_schedule"] == "constant" for t in held)
    amim = build_tasks(SweepOptions(seeds=2, flags=frozenset({"amim_no_warmup"})), tmp_path)
    assert sorted((t["spec"], t["objective"], round(t["min_scale"], 3)) for t in amim) == [
        ("digits_pixelcnn", "amim", floor) for floor in (0.05, 0.05, 0.15, 0.15, 0.2, 0.2, 0.3, 0.3)
    ]
    assert task_spec(amim[-1]).model.min_scale == amim[-1]["min_scale"]
    scored = build_tasks(SweepOptions(seeds=2, flags=frozenset({"score_baselines"})), tmp_path)
    assert sorted((t["spec"], t["objective"]) for t in scored) == [
        ("sentences_gru", o) for o in ("mim_score", "mim_score", "mim_score_loo", "mim_score_loo")
    ]
    floored = build_tasks(SweepOptions(seeds=2, flags=frozenset({"encoder_side_floor"})), tmp_path)
    assert [(t["spec"], t["objective"], t["min_scale"], t["patience"]) for t in floored] == [
        ("digits_pixelcnn", "mim_encoder_side", 0.2, 0)
    ] * 2
    assert task_spec(floored[0]).model.min_scale == 0.2
    for further in (amim, scored, floored):
        assert all(t["warmup_epochs"] == 0 and t["lr_schedule"] == "constant" for t in further)
    sentences = [t for t in tasks if t["spec"] == "sentences_gru"]
    assert {t["n_train"] for t in sentences} == {10_000} and {t["epochs"] for t in sentences} == {10}
    assert all(t["extra"] == "paper.strong_decoders:extra_metrics" for t in tasks)
    assert len({t["run_dir"] for t in tasks}) == len(tasks)
    with pytest.raises(SystemExit, match="unknown model"):
        build_tasks(SweepOptions(settings="sentences_gru,toy4"), tmp_path)
    # a flag whose rows are all for another model would run nothing: refused, naming the flag and its models
    only_images = SweepOptions(settings="sentences_gru", flags=frozenset({"encoder_side_floor"}))
    with pytest.raises(
        SystemExit, match="--encoder-side-floor has rows for digits_pixelcnn only, not for sentences_gru"
    ):
        build_tasks(only_images, tmp_path)


def constant_extra(result, task):
    """A stand-in ``extra`` measurement for the hook's test."""
    return {"latent_dim_seen": float(result.spec.model.latent_dim), "seed_seen": float(task["seed"])}


def test_the_sweep_merges_an_extra_measurement_into_the_record(tmp_path):
    task = {"spec": "toy4", "objective": "elbo", "seed": 3, "epochs": 1, "n_train": 128, "n_val": 64, "n_test": 64}
    seen = []
    extra = f"{__name__}:constant_extra"
    run_tasks([{**task, "extra": extra, "run_dir": str(tmp_path / "run")}], seen.append)
    assert "error" not in seen[0], seen[0].get("error")
    assert seen[0]["metrics"]["latent_dim_seen"] == 2.0 and seen[0]["metrics"]["seed_seen"] == 3.0
    with pytest.raises(ValueError, match="'extra' must read 'module:function'"):
        extra_measure("paper.strong_decoders")


def test_step_seconds_times_each_objective_and_trains_the_model():
    import pyro

    from pyromim.models import build_model

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = build_model("toy4")
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(64, 2)
    seconds = step_seconds(model, x, ("elbo", "mim"), rounds=3, budget=0.0)
    assert set(seconds) == {"elbo", "mim"} and all(s > 0 for s in seconds.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # it really stepped
    pyro.clear_param_store()


def _committed_runs():
    import json
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    return root, json.loads((root / "docs" / "paper_results" / "strong_decoders.json").read_text())["runs"]


def test_the_readme_and_the_guide_quote_the_committed_strong_decoder_results():
    from paper.strong_decoders import SPECS, guide_rows

    root, runs = _committed_runs()
    readme = (root / "README.md").read_text()
    tables = (root / "docs" / "paper_results" / "tables.md").read_text()
    for spec in SPECS:
        table = strong_table(runs, spec)
        assert table and table in readme and table in tables, spec
    guide = (root / "docs" / "guide" / "which_objective.rst").read_text()
    for row in guide_rows(runs):
        assert row in guide, row
