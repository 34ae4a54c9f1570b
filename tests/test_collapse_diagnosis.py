"""The collapse diagnosis of the paper harness: its per-term rows add up to the whole objective's.

Every statistic but the signal-to-noise ratio is linear in the gradient, so the
terms' pulls must add up to the total's (an omitted or double-counted term
breaks it), and the score-function objective (with either baseline) differs from
the detached one by the decoder side's self-likelihood only.
"""

import math

import pytest
import torch

from paper.collapse_diagnosis import adam_scaling, main


@pytest.fixture(scope="module")
def quick():
    return main(["--quick"])


def test_term_pulls_add_up_to_the_whole_objective(quick):
    for checkpoint in quick["checkpoints"]:
        rows = checkpoint["terms"]
        detached = [row for label, row in rows.items() if not label.startswith(("total", "decoder: score"))]
        assert len(detached) == 7
        for part, direction in (("encoder", "info"), ("decoder", "code")):
            total = rows["total: MIM [detach]"][part]["pull"]
            summed = sum(row[part]["pull"] for row in detached)
            assert math.isclose(summed, total, rel_tol=1e-3, abs_tol=1e-6), (checkpoint["step"], direction)
            # through Adam's scaling too (a fixed per-weight factor: still linear in the gradient)
            total = rows["total: MIM [detach]"][part]["adam_pull"]
            summed = sum(row[part]["adam_pull"] for row in detached)
            assert math.isclose(summed, total, rel_tol=1e-3, abs_tol=1e-5), (checkpoint["step"], direction)
        for key in ("raw_pull", "adam_raw_pull"):  # the encoder's raw scale, plain and through Adam
            total = rows["total: MIM [detach]"]["encoder"][key]
            summed = sum(row["encoder"][key] for row in detached if row["encoder"]["norm"] > 0)
            assert math.isclose(summed, total, rel_tol=1e-3, abs_tol=1e-5), (checkpoint["step"], key)
        # the score-function objective: the detached self-likelihood's pathwise part swapped for its score term
        # (with either baseline)
        for total, term in (("score", ""), ("score_loo", " [leave-one-out]")):
            score = rows[f"total: MIM [{total}]"]["decoder"]["pull"]
            swapped = (
                rows["total: MIM [detach]"]["decoder"]["pull"]
                - rows["decoder: model site 'x' [detach]"]["decoder"]["pull"]
                + rows[f"decoder: score function of decoder:model:x{term}"]["decoder"]["pull"]
            )
            assert math.isclose(score, swapped, rel_tol=1e-3, abs_tol=1e-6), total
        # the leave-one-out score term split by the terms that weight it
        pieces = [r for label, r in rows.items() if ", cost: " in label]
        assert len(pieces) == 6
        whole = rows["decoder: score function of decoder:model:x [leave-one-out]"]["decoder"]["pull"]
        assert math.isclose(sum(r["decoder"]["pull"] for r in pieces), whole, rel_tol=1e-3, abs_tol=1e-6)


def test_each_checkpoint_reports_the_code_state(quick):
    assert [c["step"] for c in quick["checkpoints"]] == [0, 5]
    for checkpoint in quick["checkpoints"]:
        assert checkpoint["rate"] >= 0 and checkpoint["code_info"] >= 0
        assert math.isfinite(checkpoint["code_gap"])


def test_amim_steps_train_the_asymmetric_objective_first(quick):
    # A-MIM for the first 5 steps: the weights at step 5 are another objective's; at step 0 they are the same
    phased = main(["--quick", "--amim-steps", "5"])
    assert phased["settings"]["amim_steps"] == 5
    first, later = phased["checkpoints"]
    assert first["code_info"] == quick["checkpoints"][0]["code_info"]
    assert later["code_gap"] != quick["checkpoints"][1]["code_gap"]
    assert set(later["terms"]) == set(quick["checkpoints"][1]["terms"])  # the measurements are symmetric MIM's


def test_adam_scaling_is_one_over_the_root_of_the_bias_corrected_squared_gradient_mean():
    weight, unseen = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    adam = torch.optim.Adam([weight], betas=(0.9, 0.99), eps=1e-8)
    grads = [torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 0.0, 0.5]), torch.tensor([-1.0, 1.0, 0.5])]
    for g in grads:
        weight.grad = g.clone()
        adam.step()

    class Optim:  # what pyro.optim.Adam keeps: one torch optimiser per parameter
        optim_objs = {weight: adam}

    # v = (1 - b2) sum_i b2^(n - i) g_i^2, bias-corrected by 1 - b2^n, by hand
    v = sum(0.01 * 0.99 ** (len(grads) - 1 - i) * g.pow(2) for i, g in enumerate(grads)) / (1 - 0.99**3)
    expected = torch.cat([1 / (v.sqrt() + 1e-8), torch.ones(2)])  # a weight with no state: 1
    assert torch.allclose(adam_scaling(Optim, [weight, unseen]), expected, rtol=1e-5)


def test_at_the_first_checkpoint_the_adam_pull_is_the_plain_pull_of_the_batch(quick):
    # no step taken yet: no Adam state, scaling 1, so the Adam pull is the plain pull (per datum) times the batch of 64
    for row in quick["checkpoints"][0]["terms"].values():
        for part in ("encoder", "decoder"):
            if row[part]["norm"] > 0:
                assert math.isclose(row[part]["adam_pull"], row[part]["pull"] * 64, rel_tol=1e-4, abs_tol=1e-6)


def test_the_raw_scale_is_the_encoder_heads_pre_activation():
    import dataclasses

    from paper.collapse_diagnosis import _probe_directions
    from pyromim import build_model
    from pyromim.data import synthetic_sentences
    from pyromim.specs import resolve_spec

    spec = resolve_spec("sentences_gru")
    model = build_model(dataclasses.replace(spec, model=dataclasses.replace(spec.model, min_scale=0.001)))
    probe = synthetic_sentences(seed=0, n_train=32, n_val=0, n_test=0).train.x
    state, _, _, raw_direction = _probe_directions(model, probe, torch.Generator().manual_seed(0))
    _, scale = model.posterior(probe)
    # sigma = exp(r) + floor, so r = log(sigma - floor), independently of the hook
    assert math.isclose(state["raw_scale"], float(torch.log(scale.detach() - 0.001).mean()), rel_tol=1e-4)
    head = model.encoder.head.linear
    assert raw_direction.shape == (sum(p.numel() for p in model.encoder.parameters()),)
    # the head's bias: the 16 loc outputs' do not move r, each of the 16 raw outputs' moves its mean by 1/16
    offset = 0
    for param in model.encoder.parameters():
        if param is head.bias:
            break
        offset += param.numel()
    bias_part = raw_direction[offset : offset + head.bias.numel()]
    assert torch.allclose(bias_part[16:], torch.full((16,), 1 / 16)) and torch.all(bias_part[:16] == 0)


def test_a_negative_amim_steps_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--quick", "--amim-steps", "-3"])
    assert "--amim-steps must be 0 (symmetric MIM from the first step) or more, got -3" in capsys.readouterr().err
