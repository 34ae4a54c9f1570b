"""The two sides of the MIM loss as sums of weighted log-density terms, and their score-function baselines.

A :class:`Side` collects the terms of one side (encoder or decoder): their value,
the differentiable surrogate whose gradient is the estimator's, and, per plate,
the detached costs that weight the score-function terms of non-reparameterised
draws (Rao-Blackwellised as :class:`~pyro.infer.Trace_ELBO` does).
:class:`StoreBaselines` keeps the running-mean baselines subtracted from those
costs in Pyro's param store; a side built with ``leave_one_out`` subtracts from
each draw's cost the mean cost of the site's other draws instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

import pyro
import torch
from pyro.distributions.util import is_identically_zero
from pyro.infer.util import MultiFrameTensor
from pyro.nn import PyroModule

from pyromim.infer.sites import all_sample_sites

__all__ = ["ScorePart", "Side", "StoreBaselines", "subtract_baselines", "update_baselines"]


class ScorePart(NamedTuple):
    """One score-function site's part of a side (:meth:`Side.score_parts`)."""

    #: ``"<side>:<role>:<site>"``, the key of its running-mean baseline
    key: str
    #: ``sum((cost - leave-one-out baseline) * score)``, or ``sum(cost * score)`` when ``running``
    surrogate: torch.Tensor
    #: the summed score, which a running-mean baseline multiplies
    score_sum: torch.Tensor
    #: the mean cost, which a running-mean baseline follows
    cost_mean: torch.Tensor
    #: whether the running-mean baseline is still to be subtracted (no leave-one-out baseline)
    running: bool


class Side:
    """Weighted log-probability terms of one side of the MIM loss.

    ``value`` sums the terms, ``surrogate`` sums their differentiable parts, and
    ``cost`` keeps the detached terms by plate for score-function estimators.
    """

    def __init__(self, name: str, leave_one_out: bool = False):
        self.name = name
        #: each score-function site's baseline: the mean cost of the site's other draws (elements
        #: of its plates) instead of a running mean (see :meth:`score_parts`)
        self.leave_one_out = leave_one_out
        self.value: Any = 0.0
        self.surrogate: Any = 0.0
        self.terms: list[tuple[str, torch.Tensor]] = []
        #: each term's weighted total and its part of the surrogate: ``(label, value, surrogate)``
        self.parts: list[tuple[str, Any, Any]] = []
        self.sampled: list[tuple[str, dict]] = []
        #: the terms that weight score functions: ``(label, plate stack, weighted term)``
        self._cost_terms: list[tuple[str, Any, torch.Tensor]] = []

    @property
    def cost(self) -> MultiFrameTensor:
        """The detached terms summed by plate (built when a score-function site asks)."""
        return self.cost_of()

    def cost_of(self, terms: Callable[[str], bool] | None = None) -> MultiFrameTensor:
        """The detached terms whose labels ``terms`` accepts (all by default), summed by plate."""
        chosen = (entry for entry in self._cost_terms if terms is None or terms(entry[0]))
        return MultiFrameTensor(*((stack, term.detach()) for _, stack, term in chosen))

    @property
    def cost_labels(self) -> list[str]:
        """The labels of the terms in the score-function costs, each once, in the order added."""
        return list(dict.fromkeys(label for label, _, _ in self._cost_terms))

    def add(self, label, log_prob, weight, stack, differentiable=None, in_cost=True):
        term = weight * log_prob
        total = term.sum()
        self.terms.append((label, log_prob))
        self.value = self.value + total
        surrogate: Any = None  # (a term with no differentiable part adds no operation to the surrogate)
        if differentiable is None or differentiable is log_prob:
            # a reparameterised draw's entropy term is its log-prob: the same sum
            surrogate = total
        elif not is_identically_zero(differentiable):
            surrogate = (weight * differentiable).sum()
        if surrogate is not None:
            self.surrogate = self.surrogate + surrogate
        self.parts.append((label, total, 0.0 if surrogate is None else surrogate))
        if in_cost:
            self._cost_terms.append((label, stack, term))

    def add_total(self, label, total):
        """A term computed whole (an exact expectation over enumerated sites, or a
        log-density with enumerated sites summed out): value and surrogate at once,
        outside the score-function costs."""
        self.terms.append((label, total))
        self.parts.append((label, total, total))
        self.value = self.value + total
        self.surrogate = self.surrogate + total

    def add_evaluated(self, role, trace, weight, sites=None):
        """Sites whose values are given: the full log-prob is differentiable.
        ``sites`` (a predicate on a site) selects some of them."""
        for name, site in all_sample_sites(trace):
            if sites is not None and not sites(site):
                continue
            self.add(f"{role} site '{name}'", site["log_prob"], weight, site["cond_indep_stack"])

    def add_sampled(self, role, trace, weight, detach=False, sites=None):
        """Sites drawn on this side: pathwise part via ``entropy_term``, and a
        score-function term, unless ``detach`` treats non-reparameterised draws
        as fixed data (full log-prob gradient, no score function). ``weight``
        ``None``: the sites' own log-probs are not terms of this side (weight 0),
        but their score-function terms are (they weight the other terms)."""
        for name, site in all_sample_sites(trace):
            if sites is not None and not sites(site):
                continue
            parts = site["score_parts"]
            detached = detach and not is_identically_zero(parts.score_function)
            if weight is not None:
                self.add(
                    f"{role} site '{name}'",
                    site["log_prob"],
                    weight,
                    site["cond_indep_stack"],
                    differentiable=site["log_prob"] if detached else parts.entropy_term,
                )
            if not detached and not is_identically_zero(parts.score_function):
                self.sampled.append((f"{self.name}:{role}:{name}", site))

    def score_terms(self):
        """Surrogate of the score-function terms, and per site that takes a running-mean
        baseline the summed score and mean cost that baseline uses."""
        surrogate: Any = 0.0
        stats = []
        for part in self.score_parts():
            surrogate = surrogate + part.surrogate
            if part.running:
                stats.append((part.key, part.score_sum, part.cost_mean))
        return surrogate, stats

    def score_parts(self, terms: Callable[[str], bool] | None = None) -> Iterator[ScorePart]:
        """Per site drawn without reparameterisation, its :class:`ScorePart`.

        The surrogate is ``sum(cost * score)``, with no baseline for the running mean
        to be subtracted later; with :attr:`leave_one_out` and a site of more than one
        element (its plates' draws, particles included when vectorised) it is
        ``sum((cost_i - b_i) * score_i)`` with ``b_i`` the mean cost of the site's other
        elements. The draws of a plate are independent given what comes before it, so
        ``b_i`` does not depend on draw ``i`` and the estimate stays unbiased, as long
        as no term after the plate reads several of its draws at once (each element's
        cost must depend on its own draws only).

        ``terms`` (a predicate on the cost terms' labels, :attr:`cost_labels`) keeps
        only some terms in the cost: the surrogate is linear in the cost, so the
        parts of a split of the terms add up to the whole (the running mean aside).
        """
        if not self.sampled:
            return
        costs = self.cost_of(terms)
        for key, site in self.sampled:
            cost = torch.as_tensor(costs.sum_to(site["cond_indep_stack"]))
            score = site["score_parts"].score_function
            cost_mean = cost.mean().detach()
            if self.leave_one_out and torch.broadcast_shapes(cost.shape, score.shape).numel() > 1:
                cost, score = torch.broadcast_tensors(cost, score)
                others = (cost.sum() - cost) / (cost.numel() - 1)
                yield ScorePart(key, ((cost - others) * score).sum(), score.sum(), cost_mean, False)
            else:
                yield ScorePart(key, (cost * score).sum(), score.sum(), cost_mean, True)

    def add_learned_qx(self, q_x: Callable[..., torch.Tensor], observed: Mapping[str, Any], weight, in_cost):
        """``weight * log q(x)`` from a callable ``q_x`` at the observed (or generated) data,
        masked and scaled like the first observed site."""
        if isinstance(q_x, torch.nn.Module) and not isinstance(q_x, PyroModule):
            pyro.module("pyromim_q_x", q_x)
        if not observed:
            raise ValueError("a learned q_x needs a model with an observed site.")
        values = {name: site["value"] for name, site in observed.items()}
        first = next(iter(observed.values()))
        log_qx = q_x(**values)
        expected = first["log_prob"].shape
        try:
            fits = torch.broadcast_shapes(log_qx.shape, expected) == expected
        except (AttributeError, RuntimeError):
            fits = False
        if not fits:
            shape = tuple(log_qx.shape) if torch.is_tensor(log_qx) else type(log_qx)
            raise ValueError(
                f"q_x callable returned shape {shape} on the {self.name} side; it "
                f"must return per-datum log q(x) with the batch shape "
                f"{tuple(expected)} of observed site '{first['name']}' (no event "
                f"dims: sum log-densities over each datum's dimensions)."
            )
        log_qx = log_qx.expand(expected)
        mask = first.get("mask")
        if mask is not None and mask is not True:
            log_qx = torch.where(mask, log_qx, log_qx.new_zeros(()))
        scale = first.get("scale", 1.0)
        self.add("learned q_x", log_qx * scale, weight, first["cond_indep_stack"], in_cost=in_cost)


class StoreBaselines(MutableMapping[str, float]):
    """Running-mean baselines of score-function costs, kept in Pyro's param store.

    Pyro's own decaying-average baselines live there too (as
    ``__baseline_avg_downstream_cost_*``), so ``pyro.get_param_store().save()``
    and ``load()`` carry them with the parameters and ``pyro.clear_param_store()``
    resets them. Each baseline is a scalar entry named ``__mim_baseline_<key>``;
    this mapping reads and writes them as floats.
    """

    PREFIX = "__mim_baseline_"

    def __getitem__(self, key: str) -> float:
        store = pyro.get_param_store()
        name = self.PREFIX + key
        if name not in store:
            raise KeyError(key)
        return float(store[name].detach())

    def __setitem__(self, key: str, value: float) -> None:
        pyro.get_param_store()[self.PREFIX + key] = torch.tensor(float(value))

    def __delitem__(self, key: str) -> None:
        store = pyro.get_param_store()
        if self.PREFIX + key not in store:
            raise KeyError(key)
        del store[self.PREFIX + key]

    def __iter__(self) -> Iterator[str]:
        names = [n for n in pyro.get_param_store().keys() if n.startswith(self.PREFIX)]
        return (n[len(self.PREFIX) :] for n in names)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"StoreBaselines({dict(self.items())!r})"


def subtract_baselines(loss: Any, surrogate: Any, score_sums: Mapping[str, Any]) -> Any:
    """Subtract ``b * score`` for each score-function site, ``b`` a running
    mean of past costs (independent of the current draw, hence unbiased)."""
    if loss.baseline_decay is None:
        return surrogate
    for key, score_sum in score_sums.items():
        b = loss.baselines.get(key)
        if b is not None:
            surrogate = surrogate - b * score_sum
    return surrogate


def update_baselines(loss: Any, stats: Mapping[str, list]) -> None:
    """Move each site's baseline of ``loss.baselines`` towards the cost mean of this step
    (an exponential moving average with decay ``loss.baseline_decay``)."""
    if loss.baseline_decay is None:
        return
    for key, (_, cost_mean) in stats.items():
        c = float(torch.as_tensor(cost_mean).item())
        if math.isfinite(c):
            b, d = loss.baselines.get(key), loss.baseline_decay
            loss.baselines[key] = c if b is None else d * b + (1 - d) * c
