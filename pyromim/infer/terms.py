"""The MIM loss of one step split into its weighted terms, to see which term does what.

:func:`loss_terms` runs a :class:`~pyromim.infer.Trace_MIM` (or a subclass) once
and returns every weighted log-density term of its two sides, plus one term per
score-function site, each with its share of the loss value and of the
surrogate whose gradient is the estimator's. The shares add up to the loss and
to :meth:`~pyromim.infer.Trace_MIM.differentiable_loss`'s surrogate for the same
random draws, so the gradient of one term's ``surrogate`` is that term's part of
the training gradient::

    from pyromim.infer import loss_terms

    for term in loss_terms(Trace_MIM(), model, guide, x):
        grads = torch.autograd.grad(term.surrogate, params, retain_graph=True, allow_unused=True)

For symmetric MIM with ``q_x="marginal"`` the terms are, with ``beta`` the warm-up
weight: on the encoder side (``x`` data, ``z ~ q(z|x)``) the model's sites
(``-1/4 (1 + beta) log p(x, z)``; the guide's log-density cancels and only its
score-function terms remain); on the decoder side (``z ~ p(z)``, ``x ~ p(x|z)``) the
model at its own draw (``-1/4 log p(x, z)``), the guide at that draw
(``-1/4 beta log q(z|x)``, the re-encoding of generated data) and the one-sample
``log q(x)`` through a fresh guide draw ``z'`` (``-1/4 beta log p(x, z')`` and
``+1/4 beta log q(z'|x)``).
"""

from __future__ import annotations

import operator
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

if TYPE_CHECKING:
    from pyromim.infer.trace_mim import Trace_MIM

__all__ = ["LossTerm", "loss_terms"]


class LossTerm(NamedTuple):
    """One weighted term of the MIM loss, averaged over particles."""

    #: ``"encoder"`` or ``"decoder"``
    side: str
    #: what the term is, e.g. ``"model site 'x'"``, ``"re-encoding guide site 'z'"``,
    #: ``"score function of decoder:model:x"``
    label: str
    #: its share of the loss estimate
    value: torch.Tensor
    #: its share of the surrogate loss (the score-function terms with the current baselines
    #: subtracted, as a training step uses them)
    surrogate: torch.Tensor


def loss_terms(loss: Trace_MIM, model, guide, *args, split_scores: bool = False, **kwargs) -> list[LossTerm]:
    """The terms of ``loss`` on one draw of its particles, in the order the sides build them.

    Their ``value`` s add up to the loss estimate and their ``surrogate`` s to the surrogate
    of :meth:`~pyromim.infer.Trace_MIM.differentiable_loss` at the same random state (a term
    that appears once per particle is summed over particles). Baselines are read, not
    updated, so the call does not change the objective's state.

    With ``split_scores`` each score-function term is split by the terms of its cost:
    ``"score function of <site>, cost: <term>"`` (the score weighted by that term alone,
    centred by its own leave-one-out baseline when the loss uses those), plus
    ``"score function of <site>, running-mean baseline"`` where a running mean is
    subtracted. They still add up to the surrogate: it is linear in the cost.
    """
    totals: dict[tuple[str, str], list[Any]] = {}

    def add(side: str, label: str, value: Any, surrogate: Any) -> None:
        entry = totals.setdefault((side, label), [0.0, 0.0])
        entry[0] = entry[0] + value / loss.num_particles
        entry[1] = entry[1] + surrogate / loss.num_particles

    for traces in loss._get_traces(model, guide, args, kwargs):
        for side in loss._sides(traces, loss.beta):
            for label, value, surrogate in side.parts:
                add(side.name, label, value, surrogate)
            for part in side.score_parts():
                surrogate = part.surrogate
                baseline = loss.baselines.get(part.key) if part.running and loss.baseline_decay is not None else None
                if not split_scores:
                    if baseline is not None:
                        surrogate = surrogate - baseline * part.score_sum
                    add(side.name, f"score function of {part.key}", 0.0, surrogate)
                    continue
                for label in side.cost_labels:
                    pieces = side.score_parts(partial(operator.eq, label))
                    piece = next(p for p in pieces if p.key == part.key)
                    add(side.name, f"score function of {part.key}, cost: {label}", 0.0, piece.surrogate)
                if baseline is not None:
                    add(
                        side.name,
                        f"score function of {part.key}, running-mean baseline",
                        0.0,
                        -baseline * part.score_sum,
                    )
    return [
        LossTerm(side, label, torch.as_tensor(value), torch.as_tensor(surrogate))
        for (side, label), (value, surrogate) in totals.items()
    ]
