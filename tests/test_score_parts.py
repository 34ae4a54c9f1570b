"""A side's score-function parts against a hand computation: the running-mean form
``sum(cost * score)`` and the leave-one-out form ``sum((cost_i - mean_{j != i} cost_j) * score_i)``."""

import pytest
import torch
from pyro.poutine.indep_messenger import CondIndepStackFrame

from pyromim.infer.sides import Side


class _Parts:
    def __init__(self, score):
        self.score_function = score


def _side(leave_one_out, cost, score, stack):
    side = Side("decoder", leave_one_out)
    side.add("model site 'x'", cost, 1.0, stack)
    side.sampled.append(("decoder:model:x", {"score_parts": _Parts(score), "cond_indep_stack": stack}))
    return side


def test_leave_one_out_parts_match_a_hand_computation():
    torch.manual_seed(0)
    stack = (CondIndepStackFrame("data", -1, 5, 1),)
    cost = torch.randn(5)
    score = torch.randn(5, requires_grad=True)
    (running,) = _side(False, cost, score, stack).score_parts()
    (loo,) = _side(True, cost, score, stack).score_parts()
    assert running.running and not loo.running
    torch.testing.assert_close(running.surrogate, (cost * score).sum())
    others = torch.stack([torch.cat([cost[:i], cost[i + 1 :]]).mean() for i in range(5)])
    torch.testing.assert_close(loo.surrogate, ((cost - others) * score).sum())
    torch.testing.assert_close(loo.score_sum, score.sum())
    torch.testing.assert_close(loo.cost_mean, cost.mean())
    # the surrogate's gradient in the scores is the centred cost
    (grad,) = torch.autograd.grad(loo.surrogate, score)
    torch.testing.assert_close(grad, cost - others)


def test_a_site_of_one_element_keeps_the_running_mean():
    """A global draw (no plate) has no other draws to average: the running mean stays."""
    cost = torch.tensor(2.5)
    score = torch.tensor(0.7, requires_grad=True)
    (part,) = _side(True, cost, score, ()).score_parts()
    assert part.running
    torch.testing.assert_close(part.surrogate, cost * score)


@pytest.mark.parametrize("bad", ["mean", "score", 1])
def test_score_baseline_option_refuses_unknown_values(bad):
    from pyromim import Trace_MIM

    with pytest.raises(ValueError, match="score_baseline must be 'running_mean'"):
        Trace_MIM(score_baseline=bad)
