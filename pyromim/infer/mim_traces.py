"""The traces one MIM particle needs, with the checks that keep them honest.

Encoder side: the guide run on the data, the model replayed on it (exactly the
traces of :class:`~pyro.infer.Trace_ELBO`).

Decoder side: the model run with its observed sites un-conditioned
(``z ~ p(z)``, ``x ~ p(x|z)``); the guide evaluated at the generated data with
its latent sites (and subsample indices) replayed from that model trace; and,
for the one-sample estimate of ``log q(x)`` at generated data, a fresh guide
draw ``z' ~ q(z|x)`` (re-encoding) with the model, conditioned on the generated
data, replayed on it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import pyro.poutine as poutine
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine.trace_struct import Trace
from pyro.poutine.subsample_messenger import _Subsample
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_site_shape

from pyromim.infer.guide_inputs import GuideInputs, substitute_generated

__all__ = ["MIMTraces", "encoder_traces", "decoder_traces"]


class MIMTraces(NamedTuple):
    enc_model: Trace
    enc_guide: Trace
    dec_model: Optional[Trace] = None
    dec_guide: Optional[Trace] = None
    re_guide: Optional[Trace] = None
    re_model: Optional[Trace] = None


def _sample_sites(trace: Trace):
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["infer"].get("is_auxiliary", False)
    }


def _latent_names(model_trace: Trace) -> list[str]:
    return [
        name
        for name, site in _sample_sites(model_trace).items()
        if not site["is_observed"] and not site["infer"].get("was_observed", False)
    ]


def _check_not_enumerated(trace: Trace, role: str) -> None:
    for name, site in _sample_sites(trace).items():
        if site["infer"].get("enumerate"):
            raise NotImplementedError(
                f"Trace_MIM does not support enumerated discrete latents yet: {role} "
                f"site '{name}' is marked infer={{'enumerate': "
                f"'{site['infer']['enumerate']}'}}. Remove config_enumerate / the "
                f"'enumerate' hint so the site is sampled (with score-function "
                f"gradients), or use pyro.infer.TraceEnum_ELBO."
            )


def _check_guide_covers(model_trace: Trace, guide_trace: Trace, side: str) -> None:
    auxiliary = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("is_auxiliary", False)
    ]
    if auxiliary and side == "decoder":
        raise ValueError(
            f"Trace_MIM(symmetric=True) evaluates log q(z|x) at latents drawn from "
            f"the model, which a guide with auxiliary latent(s) {auxiliary} cannot "
            f"do (e.g. AutoMultivariateNormal). Use a guide with one sample site "
            f"per latent (e.g. AutoNormal) or Trace_MIM(symmetric=False)."
        )
    latents = _latent_names(model_trace)
    guide_sites = _sample_sites(guide_trace)
    missing = [name for name in latents if name not in guide_sites]
    if missing:
        raise ValueError(
            f"Trace_MIM ({side} side): the guide has no sample site for model "
            f"latent(s) {missing}. MIM needs log q(z|x) for every latent: add "
            f"pyro.sample({missing[0]!r}, ...) to the guide. Guide sites: "
            f"{sorted(guide_sites) or '(none)'}."
        )
    extra = [name for name in guide_sites if name not in model_trace.nodes]
    if extra:
        raise ValueError(
            f"Trace_MIM ({side} side): guide sample site(s) {extra} do not appear "
            f"in the model. Give guide sites the names of the model's latents, or "
            f"mark helper sites infer={{'is_auxiliary': True}}."
        )


def encoder_traces(
    max_plate_nesting: float, model: Callable, guide: Callable, args, kwargs
) -> tuple[Trace, Trace]:
    """Guide on the data, model replayed on it; log-probs and score parts."""
    model_trace, guide_trace = get_importance_trace(
        "flat", max_plate_nesting, model, guide, args, kwargs
    )
    _check_not_enumerated(guide_trace, "guide")
    _check_not_enumerated(model_trace, "model")
    _check_guide_covers(model_trace, guide_trace, "encoder")
    return model_trace, guide_trace


def _subsample_trace(trace: Trace) -> Trace:
    """A trace holding only the subsample-index sites of ``trace``."""
    kept = Trace()
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and isinstance(site["fn"], _Subsample):
            kept.add_node(name, **site)
    return kept


def _subsample_indices(trace: Trace) -> dict:
    return {name: site["value"] for name, site in _subsample_trace(trace).nodes.items()}


def _run(fn: Callable, side_note: str, *args, **kwargs) -> Trace:
    try:
        return poutine.trace(fn).get_trace(*args, **kwargs)
    except (ValueError, RuntimeError, IndexError) as e:
        raise type(e)(
            f"{e}\n[Trace_MIM decoder side: {side_note}. The data given to the guide "
            f"here is generated by the model; under vectorize_particles it gains a "
            f"particle dimension on the left, so size data plates with "
            f"x.shape[-2] (or an explicit size), not x.shape[0].]"
        ) from e


def decoder_traces(
    model: Callable,
    guide: Callable,
    raw_guide: Callable,
    args: tuple,
    kwargs: dict,
    enc_model: Trace,
    re_encode: bool,
    max_plate_nesting: float,
    guide_inputs: GuideInputs = None,
) -> tuple[Trace, Trace, Optional[Trace], Optional[Trace]]:
    """Run the decoder side: ``(z, x) ~ p(z) p(x|z)``, the guide at that pair,
    and (if ``re_encode``) a fresh guide draw at ``x`` with the model on it."""
    dec_model = poutine.trace(poutine.uncondition(model)).get_trace(*args, **kwargs)
    generated_sites = {
        name: site
        for name, site in _sample_sites(dec_model).items()
        if site["infer"].get("was_observed", False)
    }
    if not generated_sites:
        raise ValueError(
            "Trace_MIM(symmetric=True) needs a model with at least one observed "
            "site (pyro.sample(name, dist, obs=data)) to generate decoder-side "
            "data; this model has none. Use Trace_MIM(symmetric=False) or add the "
            "observation."
        )
    encoder_values = {
        name: enc_model.nodes[name]["value"]
        for name in generated_sites
        if name in enc_model.nodes
    }
    indices = _subsample_indices(dec_model)
    gargs, gkwargs = substitute_generated(
        raw_guide, args, kwargs, generated_sites, encoder_values, indices, guide_inputs
    )
    dec_guide = _run(
        poutine.replay(guide, trace=dec_model),
        "evaluating the guide at generated data with latents from the model",
        *gargs,
        **gkwargs,
    )
    re_guide = re_model = None
    if re_encode:
        re_guide = _run(
            poutine.replay(guide, trace=_subsample_trace(dec_model)),
            "re-encoding generated data with the guide",
            *gargs,
            **gkwargs,
        )
        generated = {name: site["value"] for name, site in generated_sites.items()}
        re_model = poutine.trace(
            poutine.replay(poutine.condition(model, data=generated), trace=re_guide)
        ).get_trace(*args, **kwargs)

    dec_model = prune_subsample_sites(dec_model)
    dec_guide = prune_subsample_sites(dec_guide)
    _check_guide_covers(dec_model, dec_guide, "decoder")
    dec_model.compute_score_parts()
    dec_guide.compute_log_prob()
    if re_encode:
        re_guide = prune_subsample_sites(re_guide)
        re_model = prune_subsample_sites(re_model)
        re_guide.compute_score_parts()
        re_model.compute_log_prob()
    if is_validation_enabled():
        for trace in (dec_model, dec_guide, re_guide, re_model):
            if trace is None:
                continue
            for site in _sample_sites(trace).values():
                check_site_shape(site, max_plate_nesting)
    return dec_model, dec_guide, re_guide, re_model
