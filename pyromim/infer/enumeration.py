"""Exact sums over enumerated discrete latents, as :class:`~pyro.infer.TraceEnum_ELBO` computes them.

A discrete latent marked ``infer={"enumerate": "parallel"}`` (``config_enumerate``)
is summed out instead of sampled, on the side of MIM where that sum is defined:

* **In the guide** (a site ``y`` with ``q(y|x)``, e.g. the semi-supervised VAE's
  class): the encoder side's expectation over ``q(y|x)`` is computed exactly,
  every term weighted by ``q(y|x)``, which is differentiated (no score-function
  estimate). On the decoder side ``y`` is drawn by the model, and the guide is
  evaluated at that draw, so there is nothing to sum there; the re-encoding
  draw ``y' ~ q(y|x)`` of the one-sample ``log q(x)`` at generated data is an
  expectation over ``q`` too, computed exactly. (Under
  ``decoder_gradient="score"`` it is sampled instead: the score-function terms
  of the decoder side's discrete prior draws need its cost datum by datum.)
* **In the model**, for a site the guide does not have (e.g. a mixture
  component in Pyro's Gaussian mixture tutorial): ``p(x, z)`` is the joint
  with the site summed out, ``log sum_y p(y) p(z, x | y)``, on both sides; the
  decoder side draws ``y`` with the rest of its sample and then evaluates the
  summed joint at the generated ``(z, x)``.

The sums are Pyro's own: :class:`~pyro.poutine.enum_messenger.EnumMessenger`
allocates the enumeration dimensions, tensor contraction sums model-side
enumeration out, and :class:`~pyro.infer.util.Dice` weights the encoder side's
terms by the guide's enumerated probabilities. The restrictions of
``TraceEnum_ELBO`` apply (a finite ``max_plate_nesting``, guessed when not
given; variables outside a plate do not depend on enumerated variables inside
it), and only parallel enumeration is supported.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pyro.poutine as poutine
import torch
from pyro.infer.util import Dice
from pyro.ops import packed
from pyro.ops.contract import contract_tensor_tree
from pyro.poutine.enum_messenger import EnumMessenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites, site_is_subsample

from pyromim.infer.sites import all_sample_sites, is_global
from pyromim.ops import private

if TYPE_CHECKING:
    from pyromim.infer.mim_traces import MIMTraces

__all__ = [
    "EnumeratedSites",
    "enumerate_hint",
    "enumerated_sites",
    "enumerate_after",
    "enumerate_first",
    "enumerating",
    "pack",
    "marginal_model_costs",
    "expected_cost",
    "summed_model_trace",
    "local_ordinal",
    "enumerated_expectation",
    "summed_local",
]


class EnumeratedSites:
    """The enumerated latents of a model/guide pair: ``guide`` (sites summed over
    ``q``) and ``model`` (model latents without a guide site, summed out of ``p``)."""

    def __init__(self, guide: list[str], model: list[str]):
        self.guide = guide
        self.model = model

    def __bool__(self) -> bool:
        return bool(self.guide or self.model)

    def __repr__(self) -> str:
        return f"EnumeratedSites(guide={self.guide}, model={self.model})"


def enumerate_hint(site: Mapping[str, Any]) -> Any:
    """A site's ``infer["enumerate"]`` hint (None when not marked)."""
    return (site.get("infer") or {}).get("enumerate")


def _check_hint(name: str, site: Mapping[str, Any], role: str) -> None:
    hint = enumerate_hint(site)
    if hint != "parallel":
        raise NotImplementedError(
            f"Trace_MIM sums enumerated latents in parallel only: {role} site '{name}' is marked "
            f"infer={{'enumerate': {hint!r}}}. Use config_enumerate(..., default='parallel') "
            f"(or infer={{'enumerate': 'parallel'}}) and set max_plate_nesting if the "
            f"program's plates do not all have a dim."
        )
    if site["infer"].get("num_samples") is not None:
        raise NotImplementedError(
            f"Trace_MIM does not draw several samples of an enumerated site: {role} site '{name}' "
            f"has infer={{'num_samples': {site['infer']['num_samples']}}}. Drop num_samples to sum "
            f"over every value exactly, or drop the 'enumerate' hint to sample one value "
            f"(score-function gradient)."
        )


def enumerated_sites(model_trace: Trace, guide_trace: Trace) -> EnumeratedSites:
    """The sites marked for enumeration in a (non-enumerated) run of the pair,
    checked to be ones Trace_MIM can sum over."""
    guide, model = [], []
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and enumerate_hint(site):
            if site["is_observed"]:
                continue
            _check_hint(name, site, "guide")
            guide.append(name)
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or site["is_observed"] or not enumerate_hint(site):
            continue
        if name in guide_trace.nodes:
            continue  # the guide's draw is replayed: nothing is enumerated in the model
        _check_hint(name, site, "model")
        model.append(name)
    return EnumeratedSites(guide, model)


def enumerate_first(fn: Callable, max_plate_nesting: float) -> Callable:
    """``fn`` with parallel enumeration on, its enumeration dimensions starting
    left of the plates (a guide, or a model run without a guide)."""
    return EnumMessenger(first_available_dim=-1 - int(max_plate_nesting))(fn)


def enumerate_after(fn: Callable) -> Callable:
    """``fn`` with parallel enumeration on, continuing the dimensions the
    program run just before it (under :func:`enumerate_first`) allocated."""
    return EnumMessenger()(fn)


def enumerating(model: Callable, guide: Callable, max_plate_nesting: float) -> tuple[Callable, Callable]:
    """``model`` and ``guide`` with parallel enumeration on, as TraceEnum_ELBO
    runs them: the guide's enumeration dimensions lie left of the plates, the
    model's left of the guide's."""
    return enumerate_after(model), enumerate_first(guide, max_plate_nesting)


def pack(model_trace: Trace, guide_trace: Trace) -> None:
    """Packed log-densities (dimensions named by symbols) on both traces."""
    guide_trace.pack_tensors()
    model_trace.pack_tensors(guide_trace.plate_to_symbol)


def marginal_model_costs(model_trace: Trace, guide_trace: Trace) -> tuple[Any, dict]:
    """The model's log-density terms with its enumerated latents summed out
    (log-sum-exp by tensor contraction), by ordinal, and the ordinal of every
    site. Terms keep the guide's enumeration dimensions (if any). Both traces
    must be packed (:func:`pack`)."""
    costs, log_factors, ordering, sum_dims, scale = private.model_factors(model_trace, guide_trace)
    if log_factors:
        for ordinal, terms in contract_tensor_tree(log_factors, sum_dims).items():
            costs.setdefault(ordinal, []).extend(packed.scale_and_mask(term, scale=scale) for term in terms)
    return costs, ordering


def expected_cost(guide_trace: Trace, ordering: dict, costs: Any) -> torch.Tensor:
    """``sum over the guide's enumerated values of q * cost`` for every cost term,
    differentiable in ``q`` (Pyro's :class:`~pyro.infer.util.Dice`); sampled
    non-reparameterised guide sites contribute their score-function factor."""
    return torch.as_tensor(Dice(guide_trace, ordering).compute_expectation(costs))


def summed_model_trace(
    model: Callable,
    args: tuple,
    kwargs: dict,
    data: dict,
    draws: Trace,
    skip: list[str],
    max_plate_nesting: float,
) -> Trace:
    """The model conditioned on ``data``, with its latents replayed from
    ``draws`` except the ``skip`` (model-enumerated) ones, which are enumerated
    so that :func:`marginal_model_costs` can sum them out. Subsample indices are
    replayed from ``draws`` too."""
    replayed = Trace()
    for name, site in draws.nodes.items():
        if site["type"] == "sample" and name not in skip and name not in data:
            replayed.add_node(name, **site)
    program = enumerate_first(poutine.replay(poutine.condition(model, data=data), trace=replayed), max_plate_nesting)
    trace = prune_subsample_sites(poutine.trace(program).get_trace(*args, **kwargs))
    trace.compute_log_prob()
    return trace


def local_ordinal(trace, data_plate: str | None) -> Callable[[frozenset], bool]:
    """Whether a packed term's ordinal (plate symbols) lies in the data plate."""
    if data_plate is None:
        return lambda ordinal: True
    symbol = trace.plate_to_symbol.get(data_plate)
    if symbol is None:
        raise ValueError(
            f"Trace_MIM sums enumerated sites within vectorised plates: the data plate "
            f"'{data_plate}' is iterated (a sequential pyro.plate); give it a vectorised plate "
            f"(with pyro.plate(...)) or drop the 'enumerate' hints."
        )
    return lambda ordinal: symbol in ordinal


def enumerated_expectation(
    model_trace: Trace, guide_trace: Trace, data_plate: str | None, model_weight, guide_weight, global_guide_weight=None
) -> torch.Tensor:
    """``model_weight * log p + guide_weight * log q``, the model's enumerated latents
    summed out of ``log p`` and the expectation over the guide's enumerated latents
    exact. ``global_guide_weight``: the weight of the guide's global sites, whose
    draw this is (the encoder side); None leaves global terms out, the globals
    being replayed, not drawn (the re-encoding)."""
    costs, ordering = marginal_model_costs(model_trace, guide_trace)
    local = (lambda ordinal: True) if global_guide_weight is not None else local_ordinal(model_trace, data_plate)
    weighted: Any = OrderedDict(
        (ordinal, [packed.scale_and_mask(term, scale=model_weight) for term in terms])
        for ordinal, terms in costs.items()
        if local(ordinal)
    )
    drawn = Trace()  # the guide sites drawn here: only they contribute score-function factors
    for name, site in all_sample_sites(guide_trace):
        weight = guide_weight
        if is_global(site, data_plate):
            if global_guide_weight is None:
                continue
            weight = global_guide_weight
        drawn.add_node(name, **site)
        if isinstance(weight, float) and weight == 0.0:
            continue  # with the one-sample marginal, log q(z|x) cancels on the encoder side
        weighted.setdefault(ordering[name], []).append(packed.scale_and_mask(site["packed"]["log_prob"], scale=weight))
    return expected_cost(drawn, ordering, weighted)


def summed_local(traces: MIMTraces) -> torch.Tensor:
    """``log p(z, x)``'s local terms at the decoder side's draw, the model's
    enumerated latents summed out."""
    assert traces.dec_summed is not None and traces.dec_guide is not None  # set whenever the model enumerates
    costs, _ = marginal_model_costs(traces.dec_summed, traces.dec_guide)
    local = local_ordinal(traces.dec_summed, traces.data_plate)
    total: Any = 0.0
    for ordinal, terms in costs.items():
        if local(ordinal):
            for term in terms:
                total = total + term.sum()
    return torch.as_tensor(total)
