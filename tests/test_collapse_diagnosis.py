"""The collapse diagnosis of the paper harness: its per-term rows add up to the whole objective's.

Every statistic but the signal-to-noise ratio is linear in the gradient, so the
terms' pulls must add up to the total's (an omitted or double-counted term
breaks it), and the score-function objective (with either baseline) differs from
the detached one by the decoder side's self-likelihood only.
"""

import math

import pytest

from paper.collapse_diagnosis import main


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
