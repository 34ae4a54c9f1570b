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

from collections.abc import Callable
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from pyro.util import check_site_shape

from pyromim.infer.guide_inputs import GuideInputs, substitute_generated

__all__ = ["MIMTraces", "NonFiniteDataError", "encoder_traces", "decoder_traces", "sample_sites", "non_finite_data"]


class NonFiniteDataError(ValueError):
    """The data given to the loss (an observed site's value or an argument) hold NaN or infinite values."""


class MIMTraces(NamedTuple):
    enc_model: Trace
    enc_guide: Trace
    dec_model: Trace | None = None
    dec_guide: Trace | None = None
    re_guide: Trace | None = None
    re_model: Trace | None = None


def sample_sites(trace: Trace | None, include_auxiliary: bool = False) -> dict[str, dict]:
    """The sample sites of ``trace`` by name (none for ``None``); auxiliary guide
    sites (``infer={"is_auxiliary": True}``) only if ``include_auxiliary``, as
    ``log q`` needs them but the model has no site for them."""
    if trace is None:
        return {}
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and (include_auxiliary or not site["infer"].get("is_auxiliary", False))
    }


def _latent_names(model_trace: Trace) -> list[str]:
    return [
        name
        for name, site in sample_sites(model_trace).items()
        if not site["is_observed"] and not site["infer"].get("was_observed", False)
    ]


def _check_not_enumerated(trace: Trace, role: str) -> None:
    for name, site in sample_sites(trace).items():
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
    guide_sites = sample_sites(guide_trace)
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


def encoder_traces(max_plate_nesting: float, model: Callable, guide: Callable, args, kwargs) -> tuple[Trace, Trace]:
    """Guide on the data, model replayed on it; log-probs and score parts."""
    try:
        model_trace, guide_trace = get_importance_trace("flat", max_plate_nesting, model, guide, args, kwargs)
    except ValueError as e:
        # e.g. torch's "Expected parameter loc ... invalid values" when the data hold NaN
        message = non_finite_data(None, model, args, kwargs)
        if message is not None:
            raise NonFiniteDataError(message) from e
        raise
    _check_not_enumerated(guide_trace, "guide")
    _check_not_enumerated(model_trace, "model")
    _check_guide_covers(model_trace, guide_trace, "encoder")
    return model_trace, guide_trace


def _non_finite(value) -> str | None:
    if not torch.is_tensor(value) or not (value.is_floating_point() or value.is_complex()):
        return None
    bad = ~torch.isfinite(value)
    if not bad.any():
        return None
    n_nan = int(torch.isnan(value).sum())
    return f"{n_nan} NaN and {int(bad.sum()) - n_nan} infinite of {value.numel()} values"


def non_finite_data(model_trace: Trace | None, model: Callable, args: tuple, kwargs: dict) -> str | None:
    """A one-line report if the observed sites' values (or, failing that, the
    tensor arguments) contain NaN or infinite values, else ``None``.

    Only called once something has failed, so the data are not scanned at
    every step. Without ``model_trace`` the model is traced once, with
    Pyro's validation off, to find its observed sites.
    """
    if model_trace is None:
        try:
            with pyro.validation_enabled(False), poutine.block():
                model_trace = poutine.trace(model).get_trace(*args, **kwargs)
        except Exception:  # the model fails on these data for another reason: report the arguments
            model_trace = None
    found = []
    for name, site in sample_sites(model_trace).items():
        what = _non_finite(site["value"]) if site["is_observed"] else None
        if what is not None:
            found.append(f"observed site '{name}' ({what})")
    if not found:
        arguments = [(f"argument {i}", a) for i, a in enumerate(args)] + [
            (f"argument '{k}'", v) for k, v in kwargs.items()
        ]
        found = [f"{label} ({what})" for label, value in arguments if (what := _non_finite(value)) is not None]
    if not found:
        return None
    return (
        f"Trace_MIM: the observed data contain NaN/inf: {'; '.join(found)}. "
        f"Remove or impute those entries (e.g. keep rows where torch.isfinite(x).all(-1)) before training."
    )


def _subsample_trace(trace: Trace) -> Trace:
    """A trace holding only the subsample-index sites of ``trace``."""
    kept = Trace()
    for name, site in trace.nodes.items():
        if site_is_subsample(site):
            kept.add_node(name, **site)
    return kept


def _subsample_indices(trace: Trace) -> dict:
    return {name: site["value"] for name, site in _subsample_trace(trace).nodes.items()}


_PLATE_HINT = (
    "The data given to the guide on the decoder side is generated by the model; "
    "under vectorize_particles it gains a particle dimension on the left, so size "
    "data plates with x.shape[-2] (or an explicit size), not x.shape[0]."
)


def _check_plates_agree(model_trace: Trace, guide_trace: Trace, note: str) -> None:
    """Plates of the same name must have the same full size in model and guide;
    otherwise replayed subsample indices would silently rescale log-probs."""
    sizes = {}
    for site in model_trace.nodes.values():
        for frame in site.get("cond_indep_stack", ()):
            sizes[frame.name] = frame.full_size if frame.full_size is not None else frame.size
    for site in guide_trace.nodes.values():
        for frame in site.get("cond_indep_stack", ()):
            full = frame.full_size if frame.full_size is not None else frame.size
            if frame.name in sizes and sizes[frame.name] != full:
                raise ValueError(
                    f"Trace_MIM decoder side ({note}): guide site '{site['name']}' is in "
                    f"plate '{frame.name}' of size {full}, but the model's plate "
                    f"'{frame.name}' has size {sizes[frame.name]}. {_PLATE_HINT}"
                )


def _redrawn_single_latent(guide_trace: Trace) -> Trace | None:
    """The guide trace at generated data with its one latent site drawn afresh from
    its own distribution, saving a second guide run for the re-encoding draw.

    Exact when the guide has a single reparameterisable latent site: its
    distribution then depends on the guide's inputs alone, not on the value
    replayed from the model. ``None`` (run the guide again) otherwise.
    """
    latent = [
        name for name, site in guide_trace.nodes.items() if site["type"] == "sample" and not site_is_subsample(site)
    ]
    if len(latent) != 1:
        return None
    site = guide_trace.nodes[latent[0]]
    if site["is_observed"] or site["infer"].get("is_auxiliary", False) or not site["fn"].has_rsample:
        return None
    redrawn = guide_trace.copy()
    fresh = {key: value for key, value in site.items() if key not in ("log_prob", "unscaled_log_prob", "score_parts")}
    fresh["value"] = site["fn"].rsample()
    redrawn.nodes[latent[0]] = fresh
    return redrawn


def _run(fn: Callable, side_note: str, *args, **kwargs) -> Trace:
    try:
        return poutine.trace(fn).get_trace(*args, **kwargs)
    except (ValueError, RuntimeError, IndexError) as e:
        # the user's own error, with where it happened and the usual cause added
        note = f"[Trace_MIM decoder side: {side_note}. {_PLATE_HINT}]"
        if hasattr(e, "add_note"):  # Python >= 3.11: the same exception, traceback intact
            e.add_note(note)
            raise
        raise RuntimeError(f"{e}\n{note}") from e


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
) -> tuple[Trace, Trace, Trace | None, Trace | None]:
    """Run the decoder side: ``(z, x) ~ p(z) p(x|z)``, the guide at that pair,
    and (if ``re_encode``) a fresh guide draw at ``x`` with the model on it."""
    dec_model = poutine.trace(poutine.uncondition(model)).get_trace(*args, **kwargs)
    generated_sites = {
        name: site for name, site in sample_sites(dec_model).items() if site["infer"].get("was_observed", False)
    }
    if not generated_sites:
        raise ValueError(
            "Trace_MIM(symmetric=True) needs a model with at least one observed "
            "site (pyro.sample(name, dist, obs=data)) to generate decoder-side "
            "data; this model has none. Use Trace_MIM(symmetric=False) or add the "
            "observation."
        )
    encoder_values = {name: enc_model.nodes[name]["value"] for name in generated_sites if name in enc_model.nodes}
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
    _check_plates_agree(dec_model, dec_guide, "guide at generated data")
    re_guide = re_model = None
    if re_encode:
        re_guide = _redrawn_single_latent(dec_guide)
        if re_guide is None:
            re_guide = _run(
                poutine.replay(guide, trace=_subsample_trace(dec_model)),
                "re-encoding generated data with the guide",
                *gargs,
                **gkwargs,
            )
            _check_plates_agree(dec_model, re_guide, "re-encoding generated data")
        generated = {name: site["value"] for name, site in generated_sites.items()}
        re_model = poutine.trace(poutine.replay(poutine.condition(model, data=generated), trace=re_guide)).get_trace(
            *args, **kwargs
        )

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
            for site in sample_sites(trace).values():
                check_site_shape(site, max_plate_nesting)
    return dec_model, dec_guide, re_guide, re_model
