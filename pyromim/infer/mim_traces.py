"""The traces one MIM particle needs, with the checks that keep them honest.

Encoder side: the guide run on the data, the model replayed on it (exactly the
traces of :class:`~pyro.infer.Trace_ELBO`).

Decoder side: the model run with its observed sites un-conditioned
(``z ~ p(z|theta)``, ``x ~ p(x|z, theta)``) and its global latents ``theta``
replayed, detached, from the encoder side's guide draw; the guide evaluated at
the generated data with its latent sites (and subsample indices) replayed from
that model trace; and, for the one-sample estimate of ``log q(x)`` at generated
data, a fresh guide draw ``z' ~ q(z|x, theta)`` (re-encoding) with the model,
conditioned on the generated data, replayed on it.

Global latents are the model's latent sites outside the data plate, the plate
that holds every observed site (see :func:`pyromim.infer.sites.data_plate_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Delta
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine.runtime import Message
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from pyro.util import check_site_shape, check_traceenum_requirements, get_rng_state, set_rng_state

from pyromim.infer.enumeration import (
    EnumeratedSites,
    enumerate_after,
    enumerate_first,
    enumerate_hint,
    enumerated_sites,
    enumerating,
    pack,
    summed_model_trace,
)
from pyromim.infer.errors import GuideInputsError, NonFiniteDataError, TeacherForcingError
from pyromim.infer.guide_inputs import VECTORIZED_PARTICLES_HINT, GuideInputs, substitute_generated
from pyromim.infer.hold import HoldGuide
from pyromim.infer.sites import (
    base_distribution,
    data_plate_of,
    infer_option,
    is_data,
    is_global,
    sample_sites,
)

__all__ = [
    "DecoderTraces",
    "EncoderTraces",
    "MIMTraces",
    "TeacherForcingError",
    "check_ancestral_sampling",
    "encoder_traces",
    "decoder_traces",
    "non_finite_data",
]


class EncoderTraces(NamedTuple):
    """The encoder side of one particle: the guide run on the data and the model replayed on it."""

    model: Trace
    guide: Trace
    #: the data plate's name (see :func:`~pyromim.infer.sites.data_plate_of`)
    data_plate: str | None
    #: the sites marked for enumeration (empty when none are)
    enumerated: EnumeratedSites


class DecoderTraces(NamedTuple):
    """The decoder side of one particle."""

    #: the model run with its observed sites un-conditioned (``z ~ p(z)``, ``x ~ p(x|z)``)
    model: Trace
    #: the guide evaluated at the generated pair
    guide: Trace
    #: the re-encoding: a fresh guide draw at the generated data, and the model on it (``q_x="marginal"``)
    re_guide: Trace | None = None
    re_model: Trace | None = None
    #: the model at the generated pair with its enumerated latents enumerated, to be summed out
    summed: Trace | None = None


class MIMTraces(NamedTuple):
    enc_model: Trace
    enc_guide: Trace
    dec_model: Trace | None = None
    dec_guide: Trace | None = None
    re_guide: Trace | None = None
    re_model: Trace | None = None
    #: the data plate's name; sites outside it are global (None: every site is local)
    data_plate: str | None = None
    #: the enumerated sites (None: nothing enumerated; the encoder traces are then not packed)
    enumerated: EnumeratedSites | None = None
    #: the model at the decoder side's draw with its enumerated latents enumerated (to be
    #: summed out); None without model-side enumeration
    dec_summed: Trace | None = None
    #: whether the re-encoding traces are enumerated (and packed)
    re_enumerated: bool = False


def _latent_names(model_trace: Trace) -> list[str]:
    return [
        name
        for name, site in sample_sites(model_trace).items()
        if not site["is_observed"] and not infer_option(site, "was_observed")
    ]


def _guide_name(guide: Callable) -> str:
    name = getattr(guide, "__name__", None) or type(guide).__name__
    return str(name)


def _check_guide_covers(
    model_trace: Trace, guide_trace: Trace, side: str, data_plate: str | None = None, guide_name: str = "guide"
) -> None:
    if side == "decoder":
        # Local guide sites are evaluated at latents drawn from the model: they need a density there.
        for name, site in sample_sites(guide_trace, include_auxiliary=True).items():
            if is_global(site, data_plate) or site_is_subsample(site) or site["is_observed"]:
                continue
            if infer_option(site, "is_auxiliary") or isinstance(base_distribution(site["fn"]), Delta):
                what = "an auxiliary site" if infer_option(site, "is_auxiliary") else "a point mass (Delta)"
                raise ValueError(
                    f"Trace_MIM(symmetric=True) evaluates log q(z|x) at local latents drawn from the "
                    f"model, but the guide {guide_name} has {what} '{name}' inside the data plate: it "
                    f"has no density at the model's draws (an automatic guide over per-datum latents "
                    f"is not an encoder: its parameters belong to the training points, not to "
                    f"generated data). Give the local latents an amortised guide, e.g. "
                    f"AutoGuideList with AutoNormal(poutine.block(model, expose=[...globals])) plus "
                    f"an encoder function for the locals; automatic guides over global latents "
                    f"work on both sides. Or use Trace_MIM(symmetric=False)."
                )
    latents = _latent_names(model_trace)
    guide_sites = sample_sites(guide_trace)
    # a model latent marked for enumeration without a guide site is summed out of the model
    missing = [name for name in latents if name not in guide_sites and not enumerate_hint(model_trace.nodes[name])]
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
    max_plate_nesting: float,
    model: Callable,
    guide: Callable,
    args,
    kwargs,
    data_plate: str | None = None,
    enum: bool = False,
) -> EncoderTraces:
    """Guide on the data, model replayed on it; log-probs and score parts; the
    data plate's name (see :func:`~pyromim.infer.sites.data_plate_of`); the sites marked for
    enumeration. With ``enum`` they are enumerated and the traces packed
    (see :mod:`pyromim.infer.enumeration`); without it, the caller must run
    again with it when the returned sites are not empty."""
    if enum:
        model, guide = enumerating(model, guide, max_plate_nesting)
    try:
        model_trace, guide_trace = get_importance_trace("flat", max_plate_nesting, model, guide, args, kwargs)
    except ValueError as e:
        # e.g. torch's "Expected parameter loc ... invalid values" when the data hold NaN
        message = non_finite_data(None, model, args, kwargs)
        if message is not None:
            raise NonFiniteDataError(message) from e
        raise
    enumerated = enumerated_sites(model_trace, guide_trace)
    _check_guide_covers(model_trace, guide_trace, "encoder")
    plate = data_plate_of(model_trace, data_plate)
    if enum:
        if is_validation_enabled():
            check_traceenum_requirements(model_trace, guide_trace)
        pack(model_trace, guide_trace)
    return EncoderTraces(model_trace, guide_trace, plate, enumerated)


def _non_finite(value) -> str | None:
    if not torch.is_tensor(value) or not (value.is_floating_point() or value.is_complex()):
        return None
    bad = ~torch.isfinite(value)
    if not bad.any():
        return None
    n_nan = int(torch.isnan(value).sum())
    return f"{n_nan} NaN and {int(bad.sum()) - n_nan} infinite of {value.numel()} values"


def non_finite_data(model_trace: Trace | None, model: Callable | None, args: tuple, kwargs: dict) -> str | None:
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
                    f"'{frame.name}' has size {sizes[frame.name]}. {VECTORIZED_PARTICLES_HINT}"
                )


def _redrawn_single_latent(guide_trace: Trace, data_plate: str | None) -> Trace | None:
    """The guide trace at generated data with its one local latent site drawn afresh
    from its own distribution, saving a second guide run for the re-encoding draw.

    Exact when the guide has a single reparameterisable local latent site: its
    distribution then depends on the guide's inputs and the global latents
    alone (replayed identically in a second run), not on the value replayed
    from the model. ``None`` (run the guide again) otherwise.
    """
    latent = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site) and not is_global(site, data_plate)
    ]
    if len(latent) != 1:
        return None
    site = guide_trace.nodes[latent[0]]
    fn: Any = site["fn"]
    if site["is_observed"] or infer_option(site, "is_auxiliary") or not fn.has_rsample:
        return None
    redrawn = guide_trace.copy()
    fresh = {key: value for key, value in site.items() if key not in ("log_prob", "unscaled_log_prob", "score_parts")}
    fresh["value"] = fn.rsample()
    redrawn.nodes[latent[0]] = cast(Message, fresh)
    return redrawn


def _run(fn: Callable, side_note: str, *args, **kwargs) -> Trace:
    try:
        return poutine.trace(fn).get_trace(*args, **kwargs)
    except (ValueError, RuntimeError, IndexError) as e:
        # the user's own error, with where it happened and the usual cause added
        note = f"[Trace_MIM decoder side: {side_note}. {VECTORIZED_PARTICLES_HINT}]"
        if hasattr(e, "add_note"):  # Python >= 3.11: the same exception, traceback intact
            e.add_note(note)
            raise
        raise RuntimeError(f"{e}\n{note}") from e


def _global_draws(guide_trace: Trace, data_plate: str | None) -> Trace:
    """The guide's global sites (auxiliary ones included), values detached: the
    decoder side replays them, holding the globals fixed at the encoder side's draw."""
    kept = Trace()
    if data_plate is None:
        return kept
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and is_global(site, data_plate):
            value: Any = site["value"]
            kept.add_node(name, **dict(site, value=value.detach()))
    return kept


def _merged(*traces: Trace) -> Trace:
    merged = Trace()
    for trace in traces:
        for name, site in trace.nodes.items():
            if name not in merged.nodes:
                merged.add_node(name, **site)
    return merged


def _factor_value(site: Mapping[str, Any]) -> torch.Tensor:
    with torch.no_grad():
        return site["fn"].log_prob(site["value"])


def _check_factors_global(dec_model: Trace, enc_model: Trace, data_plate: str | None) -> None:
    """The decoder side cannot draw from a model whose factors depend on local
    latents or data; factors of global latents alone are part of their prior."""
    for name, site in dec_model.nodes.items():
        if site["type"] != "sample" or not infer_option(site, "was_observed"):
            continue
        if not infer_option(site, "is_auxiliary"):
            continue
        encoder_site = enc_model.nodes.get(name)
        same = (
            is_global(site, data_plate)
            and encoder_site is not None
            and torch.equal(_factor_value(site), _factor_value(encoder_site))
        )
        if not same:
            raise ValueError(
                f"Trace_MIM(symmetric=True): the model's pyro.factor site '{name}' depends on "
                f"local latents or data. A factor makes the model an unnormalised density, and "
                f"the decoder side needs exact draws (z, x) from it, which running the model "
                f"forward cannot give (it ignores the factor) and which importance weights "
                f"within a batch would only approximate, with a bias that depends on the batch "
                f"size. Use Trace_MIM(symmetric=False) (the encoder side evaluates the factor "
                f"exactly), or write the factored density as a distribution the model samples "
                f"from. Factors of global latents alone (outside the data plate) are supported."
            )


def decoder_traces(
    model: Callable,
    guide: Callable,
    raw_guide: Callable,
    args: tuple,
    kwargs: dict,
    encoder: EncoderTraces,
    *,
    max_plate_nesting: float,
    re_encode: bool,
    enumerate_re_encoding: bool = False,
    guide_inputs: GuideInputs = None,
    check_ancestral: bool = False,
    hold_guide: bool = False,
) -> DecoderTraces:
    """Run the decoder side: ``(z, x) ~ p(z|theta) p(x|z, theta)`` with the global
    latents ``theta`` held at the encoder side's guide draw, the guide at that
    pair, and (if ``re_encode``) a fresh guide draw at ``x`` with the model on it.
    With ``enumerate_re_encoding`` the re-encoding traces are enumerated and
    packed; with model-side enumeration the model at the decoder side's draw
    is returned with its enumerated latents enumerated, to be summed out.
    ``check_ancestral`` refuses a model whose observed sites' distributions
    depend on the observed data passed in (see :func:`check_ancestral_sampling`).
    ``hold_guide`` runs the guide with its distributions held (:class:`~pyromim.infer.hold.HoldGuide`):
    the decoder side's terms then reach none of its parameters."""
    data_plate, enumerated = encoder.data_plate, encoder.enumerated or None
    if hold_guide:
        guide = HoldGuide()(guide)
    if enumerated is not None:
        _check_enumerated_guide_sites_local(enumerated, encoder.guide, data_plate)
    globals_ = _global_draws(encoder.guide, data_plate)
    dec_model = poutine.trace(poutine.replay(poutine.uncondition(model), trace=globals_)).get_trace(*args, **kwargs)
    _check_factors_global(dec_model, encoder.model, data_plate)
    generated_sites = _generated_sites(dec_model)
    encoder_values: dict[str, Any] = {
        name: encoder.model.nodes[name]["value"] for name in generated_sites if name in encoder.model.nodes
    }
    if check_ancestral:
        check_ancestral_sampling(model, args, kwargs, dec_model, encoder_values)
    gargs, gkwargs = substitute_generated(
        raw_guide,
        args,
        kwargs,
        generated_sites,
        encoder_values,
        _subsample_indices(dec_model),
        guide_inputs,
        model=model,
        subsample_trace=_subsample_trace(dec_model),
    )
    dec_guide = _run(
        poutine.replay(guide, trace=_merged(dec_model, globals_)),
        "evaluating the guide at generated data with latents from the model",
        *gargs,
        **gkwargs,
    )
    _check_plates_agree(dec_model, dec_guide, "guide at generated data")
    generated: dict[str, Any] = {name: site["value"] for name, site in generated_sites.items()}
    re_guide = re_model = summed = None
    if re_encode:
        replayed = _merged(_subsample_trace(dec_model), globals_)
        re_guide, re_model = _re_encoding(
            model, guide, args, kwargs, (gargs, gkwargs), replayed, generated, dec_guide, data_plate,
            max_plate_nesting if enumerate_re_encoding else None,
        )  # fmt: skip
        _check_plates_agree(dec_model, re_guide, "re-encoding generated data")
    if enumerated is not None and enumerated.model:
        # the model at the decoder side's draw, its enumerated latents enumerated to be summed out
        summed = summed_model_trace(model, args, kwargs, generated, dec_model, enumerated.model, max_plate_nesting)
    traces = DecoderTraces(
        prune_subsample_sites(dec_model), prune_subsample_sites(dec_guide), re_guide, re_model, summed
    )
    _check_guide_covers(traces.model, traces.guide, "decoder", data_plate, _guide_name(raw_guide))
    return _scored(traces, max_plate_nesting, enumerate_re_encoding)


def _generated_sites(dec_model: Trace) -> dict[str, Any]:
    """The observed sites of the model, un-conditioned: the data the decoder side generates."""
    generated_sites = {name: site for name, site in sample_sites(dec_model).items() if is_data(site)}
    if not generated_sites:
        raise ValueError(
            "Trace_MIM(symmetric=True) needs a model with at least one observed "
            "site (pyro.sample(name, dist, obs=data)) to generate decoder-side "
            "data; this model has none. Use Trace_MIM(symmetric=False) or add the "
            "observation."
        )
    return generated_sites


def _re_encoding(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    guide_args: tuple[tuple, dict],
    replayed: Trace,
    generated: dict[str, Any],
    dec_guide: Trace,
    data_plate: str | None,
    enumerate_from: float | None,
) -> tuple[Trace, Trace]:
    """A fresh guide draw ``z' ~ q(z|x)`` at the generated data (with the guide's enumerated
    sites enumerated from ``enumerate_from``, an exact expectation over them, when it is
    not None) and the model, conditioned on the generated data, replayed on it."""
    gargs, gkwargs = guide_args
    re_guide = None
    if enumerate_from is not None:
        re_guide = _run(
            enumerate_first(poutine.replay(guide, trace=replayed), enumerate_from),
            "re-encoding generated data with the guide",
            *gargs,
            **gkwargs,
        )
        program = enumerate_after(poutine.replay(poutine.condition(model, data=generated), trace=re_guide))
        return re_guide, poutine.trace(program).get_trace(*args, **kwargs)
    re_guide = _redrawn_single_latent(dec_guide, data_plate)
    if re_guide is None:
        re_guide = _run(
            poutine.replay(guide, trace=replayed), "re-encoding generated data with the guide", *gargs, **gkwargs
        )
    program = poutine.replay(poutine.condition(model, data=generated), trace=re_guide)
    return re_guide, poutine.trace(program).get_trace(*args, **kwargs)


def _scored(traces: DecoderTraces, max_plate_nesting: float, enumerate_re_encoding: bool) -> DecoderTraces:
    """The decoder side's traces with their log-probs (score parts where drawn), shapes
    checked, and enumerated traces packed."""
    traces.model.compute_score_parts()
    traces.guide.compute_log_prob()
    re_guide, re_model = traces.re_guide, traces.re_model
    if re_guide is not None and re_model is not None:
        re_guide, re_model = prune_subsample_sites(re_guide), prune_subsample_sites(re_model)
        re_guide.compute_score_parts()
        re_model.compute_log_prob()
    traces = traces._replace(re_guide=re_guide, re_model=re_model)
    if is_validation_enabled():
        for trace in (traces.model, traces.guide, re_guide, re_model):
            for site in sample_sites(trace).values():
                check_site_shape(site, cast(int, max_plate_nesting))  # Pyro compares it with sizes: inf works
    if traces.summed is not None:
        pack(traces.summed, traces.guide)
    if enumerate_re_encoding and re_guide is not None and re_model is not None:
        pack(re_model, re_guide)
    return traces


def check_ancestral_sampling(
    model: Callable,
    args: tuple,
    kwargs: dict,
    dec_model: Trace,
    encoder_values: Mapping[str, torch.Tensor],
    what: str = "Trace_MIM(symmetric=True)",
    otherwise: str = "Trace_MIM(symmetric=False), which draws no data",
) -> None:
    """Refuse a model whose observed sites' distributions are computed from the observed data passed to it.

    Written "teacher-forced" (all of an autoregressive decoder's logits computed in one
    pass from the observed sequence or image), such a model run with its observed
    sites un-conditioned does not draw from ``p(x|z)``: its draws copy the data it was
    given. The check replays the model at the decoder side's draw ``dec_model`` twice,
    from the same random state (so dropout masks agree): once with its arguments as
    given and once with the generated data in place of the observed data. A model that
    draws its observed sites ancestrally gives each site the same distribution both
    times; a teacher-forced one does not, and :class:`TeacherForcingError` names the
    site. A model to whose arguments the data cannot be traced (data in a closure, or
    conditioned with ``pyro.condition``), or that does not run with the generated data in
    their place, is not checked.
    """
    generated_sites = _generated_sites(dec_model)
    try:
        margs, mkwargs = substitute_generated(
            model,
            args,
            kwargs,
            generated_sites,
            encoder_values,
            _subsample_indices(dec_model),
            model=model,
            subsample_trace=_subsample_trace(dec_model),
        )
    except GuideInputsError:
        return  # the observed data are not among the model's arguments: nothing passed in to copy
    replay = poutine.trace(poutine.replay(poutine.uncondition(model), trace=dec_model))
    state = get_rng_state()
    try:
        with torch.no_grad():
            given = replay.get_trace(*args, **kwargs)
            set_rng_state(state)
            swapped = replay.get_trace(*margs, **mkwargs)
    except Exception:
        # the model does not run on the generated data in place of the observed data (e.g. it
        # indexes the full data set with subsample indices): it cannot be checked this way
        return
    finally:
        set_rng_state(state)
    for name in generated_sites:
        value = dec_model.nodes[name]["value"]
        with torch.no_grad():
            first = cast(Any, given.nodes[name]["fn"]).log_prob(value)
            second = cast(Any, swapped.nodes[name]["fn"]).log_prob(value)
        if not torch.allclose(first, second, rtol=1e-5, atol=1e-5, equal_nan=True):
            gap = float((first - second).abs().max().item())
            raise TeacherForcingError(
                f"{what}: the distribution of observed site '{name}' is computed from the observed data "
                f"passed to the model (teacher forcing): with the data swapped for the generated draw, "
                f"log p(x|z) of that draw changes by up to {gap:.3g} nats, so the decoder side's draws are "
                f"not samples of p(x|z) and copy the data. Fix it with one of: an autoregressive "
                f"distribution from pyromim.distributions (MADEDistribution, PixelCNNDistribution, "
                f"TokenSequenceDistribution: log_prob in one teacher-forced pass, sample() ancestral); "
                f"an ancestral loop, one sample site per step fed the previous step's value; "
                f"or {otherwise}."
            )


def _check_enumerated_guide_sites_local(enumerated: EnumeratedSites, enc_guide: Trace, data_plate: str | None) -> None:
    for name in enumerated.guide:
        if is_global(enc_guide.nodes[name], data_plate):
            raise ValueError(
                f"Trace_MIM(symmetric=True): the guide's global site '{name}' (outside the data plate "
                f"'{data_plate}') is marked for enumeration. The decoder side holds global latents at the "
                f"encoder side's draw of them, and an enumerated site has no single draw. Drop the "
                f"'enumerate' hint from '{name}' (it is then sampled, with a score-function gradient), "
                f"or use Trace_MIM(symmetric=False), which sums over it exactly."
            )
