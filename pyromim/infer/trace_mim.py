"""The Mutual Information Machine objective as a Pyro ELBO-family loss.

Notation as in the MIM papers (Livne, Swersky & Fleet 2019): ``q(z|x)`` the
guide, ``p(z) p(x|z)`` the model, ``q(x)`` the encoder's marginal over data. On
a pair ``(x, z)`` the per-sample MIM cost, with warm-up weight ``beta``, is::

    l(x, z) = -1/2 [ log p(x|z) + log p(z) + beta * (log q(z|x) + log q(x)) ]

and the losses are

* symmetric MIM: ``1/2 (E_enc l + E_dec l)``, where the encoder side draws
  ``x`` from the data and ``z ~ q(z|x)``, the decoder side ``z ~ p(z)``,
  ``x ~ p(x|z)``;
* asymmetric A-MIM: ``E_enc l``.

``log q(x)`` is dropped (``q_x="data"``, A-MIM only), estimated with one
importance sample through the model (``q_x="marginal"``:
``log p(x|z') + log p(z') - log q(z'|x)``, ``z' ~ q(z|x)``; on the encoder side
``z' = z`` and ``l = -1/2 (1 + beta) log p(x, z)``), or supplied by a callable.

Gradients flow pathwise through reparameterised draws and as score-function
terms (REINFORCE, with a plate-aware Rao-Blackwellised cost as in
:class:`~pyro.infer.Trace_ELBO` and a running-mean baseline) through the
guide's non-reparameterisable draws. For the decoder side's
non-reparameterisable draws (generated Bernoulli pixels, tokens and counts,
and discrete latents drawn from the prior) there are two estimators,
``decoder_gradient``:

* ``"detach"`` (default): the generated values are held fixed, as data drawn
  from the sample distribution, and only the log-densities evaluated at them
  are differentiated. This is the MIM reference code's choice. It is *biased*
  for the gradient of the expected loss: it leaves out
  ``E[(l - b) grad log p(x|z)]``, the part that moves the decoder's own
  sampling distribution.
* ``"score"``: that part included (unbiased); ``score_baseline="leave_one_out"``
  centres each draw's cost on the mean of its plate's other draws instead of
  a running mean.

Why the biased one is the default: on discrete data the omitted part mostly
lowers the entropy ``H(x|z)`` of the generated data, and a discrete decoder
reaches ``H(x|z) ~ 0`` by emitting a few near-deterministic outputs whatever
``z`` is; the objective guide (``docs/guide/which_objective.rst``) gives the
measurements on binarised digits and the command that reproduces them.
Continuous decoders are unaffected: their draws are reparameterised.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Literal, cast

import pyro.poutine as poutine
import torch
from pyro.infer.elbo import ELBO, ELBOModule
from pyro.util import get_rng_state, set_rng_state

from pyromim.infer.autoguides import explains_reopened_plates
from pyromim.infer.enumeration import enumerated_expectation, summed_local
from pyromim.infer.errors import (
    CompilationError,
    NonFiniteDataError,
    NonFiniteLossError,
    TeacherForcingError,
    check_not_collapsed,
    describe_non_finite,
    on_side,
    warn_collapsing_priors,
)
from pyromim.infer.guide_inputs import GuideInputs
from pyromim.infer.jit_keys import graph_signature, keyed_kwargs, program_id, user_kwargs
from pyromim.infer.mim_traces import MIMTraces, decoder_traces, encoder_traces, non_finite_data
from pyromim.infer.options import QX, MIMOptions
from pyromim.infer.sides import Side, StoreBaselines, subtract_baselines, update_baselines
from pyromim.infer.sites import is_global, observed_sites
from pyromim.ops import private
from pyromim.ops.jit import CompiledFunction, on_fresh_stack, trace

__all__ = ["Trace_MIM", "JitTrace_MIM"]


class _MIMModule(ELBOModule):
    """:class:`~pyro.infer.elbo.ELBOModule` that also owns a learned ``q(x)``."""

    def __init__(self, model, guide, elbo):
        super().__init__(model, guide, elbo)
        if isinstance(elbo.q_x, torch.nn.Module):
            self.q_x = elbo.q_x


class Trace_MIM(MIMOptions, ELBO):
    r"""Mutual Information Machine loss for any Pyro model/guide pair.

    A drop-in replacement for :class:`~pyro.infer.Trace_ELBO`::

        svi = SVI(model, guide, optim, loss=Trace_MIM())

    With ``l(x,z) = -1/2 [log p(x|z) + log p(z) + beta (log q(z|x) + log q(x))]``
    the symmetric loss is ``1/2 (E_enc l + E_dec l)`` and the asymmetric (A-MIM)
    loss ``E_enc l``, summed over data plates with Pyro's subsampling scale and
    averaged over particles. The encoder side draws ``z ~ q(z|x)`` at the data;
    the decoder side runs the model with its observed sites un-conditioned
    (``z ~ p(z)``, ``x ~ p(x|z)``) and evaluates the guide at the generated data.
    Latents outside the data plate are global and keep the ELBO's terms; sites
    marked for enumeration are summed out exactly. The guide
    :doc:`/guide/trace_mim` says how each part of a program is treated, and
    :doc:`/guide/which_objective` which objective to choose.

    :param symmetric: symmetric MIM (default) or A-MIM (encoder side only).
    :param q_x: ``"marginal"`` (one-sample estimate through the model), ``"data"``
        (a dropped constant; A-MIM only) or a callable taking the observed sites'
        values as keywords and returning per-datum ``log q(x)`` (an ``nn.Module``
        is registered with ``pyro.module``).
    :param beta: weight of ``log q(z|x) + log q(x)`` in [0, 1]; may be changed
        between steps (warm-up).
    :param num_particles: number of samples per estimate.
    :param vectorize_particles: draw particles in one vectorised pass.
    :param max_plate_nesting: as in Pyro.
    :param decoder_gradient: ``"detach"`` (default: the decoder side's discrete
        draws held fixed, biased) or ``"score"`` (unbiased score-function terms).
    :param guide_gradient: ``"both"`` (default: the gradient of the loss) or
        ``"encoder_side"``: the guide's distributions are held fixed on the
        decoder side (:mod:`pyromim.infer.hold`), so the guide learns from the
        encoder side alone, exactly half A-MIM's gradient, and the decoder side
        trains the model only. Biased; for autoregressive decoders strong enough
        to ignore ``z``: with a factorised one it collapsed the code (objective
        guide, *Strong decoders*). No effect with ``symmetric=False``.
    :param baseline_decay: decay of each score-function site's running-mean
        baseline, kept in Pyro's param store; ``None`` disables running means
        (not the leave-one-out baselines).
    :param score_baseline: ``"running_mean"`` (default) or ``"leave_one_out"``:
        each draw's baseline is the mean cost of the other draws of its site's
        plates (:meth:`~pyromim.infer.sides.Side.score_parts`; sites of one
        element keep the running mean).
    :param guide_inputs: ``{observed site: guide parameter}`` or a callable
        ``(generated, args, kwargs) -> (args, kwargs)`` overriding how generated
        data reaches the guide (:mod:`pyromim.infer.guide_inputs`).
    :param data_plate: the plate over data points; default: the plate that
        encloses every observed site.
    :param check_finite: raise :class:`~pyromim.infer.NonFiniteLossError`, naming
        the site and side, when a term is NaN or infinite.

    References: M. Livne, K. Swersky, D. J. Fleet, "MIM: Mutual Information
    Machine", arXiv:1910.03175, and "High Mutual Information in Representation
    Learning with Symmetric Variational Inference", arXiv:1910.04153.
    """

    def __init__(
        self,
        *,
        symmetric: bool = True,
        q_x: QX = "marginal",
        beta: float = 1.0,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        max_plate_nesting: float = float("inf"),
        decoder_gradient: Literal["detach", "score"] = "detach",
        guide_gradient: Literal["both", "encoder_side"] = "both",
        baseline_decay: float | None = 0.9,
        score_baseline: Literal["running_mean", "leave_one_out"] = "running_mean",
        guide_inputs: GuideInputs = None,
        check_finite: bool = True,
        data_plate: str | None = None,
        retain_graph: bool | None = None,
        ignore_jit_warnings: bool = False,
        jit_options: dict | None = None,
    ):
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            ignore_jit_warnings=ignore_jit_warnings,
            jit_options=jit_options,
            retain_graph=retain_graph,
        )
        self.q_x = q_x
        self.symmetric = symmetric
        self.beta = beta
        self.decoder_gradient = decoder_gradient
        self.guide_gradient = guide_gradient
        self.baseline_decay = baseline_decay
        self.score_baseline = score_baseline
        self.guide_inputs = guide_inputs
        self.check_finite = check_finite
        self.data_plate = data_plate
        self.baselines: MutableMapping[str, float] = StoreBaselines()
        self._warned_priors: set[str] = set()
        #: model/guide pairs (by program id, see pyromim.infer.jit_keys) that mark sites for enumeration, and
        #: pairs whose runs so far marked none (a pair may mark sites only for some
        #: arguments, e.g. a label enumerated only when it is not given)
        self._enumerated_pairs: set = set()
        self._plain_pairs: set = set()
        #: pairs whose model was checked to draw its observed sites ancestrally (decoder side)
        self._ancestral_pairs: set = set()

    def __call__(self, model: torch.nn.Module, guide: torch.nn.Module) -> ELBOModule:
        return _MIMModule(model, guide, self)

    # ------------------------------------------------------------------ traces
    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("Trace_MIM builds its traces in _get_traces")

    @explains_reopened_plates
    def _get_traces(self, model, guide, args, kwargs):
        raw_guide = guide
        pair = (program_id(model), program_id(guide))
        if self.vectorize_particles:
            if self.max_plate_nesting == float("inf"):
                self._guess_max_plate_nesting(model, guide, args, kwargs)
            model = self._vectorized_num_particles(model)
            guide = self._vectorized_num_particles(guide)
            yield self._mim_traces(model, guide, raw_guide, args, kwargs, pair)
        else:
            for _ in range(self.num_particles):
                yield self._mim_traces(model, guide, raw_guide, args, kwargs, pair)

    def _encoder_traces(self, model, guide, args, kwargs, pair):
        """The encoder side's traces, enumerated when the pair marks sites for
        enumeration (found on a run without it, which is then repeated with it:
        from the same random state when that was the pair's first run)."""
        if pair in self._enumerated_pairs:
            return encoder_traces(self.max_plate_nesting, model, guide, args, kwargs, self.data_plate, enum=True)
        # the random state is saved for a pair's first run only, off the hot path of the others
        state = get_rng_state() if pair not in self._plain_pairs else None
        with warnings.catch_warnings(record=True) as caught:
            traces = encoder_traces(self.max_plate_nesting, model, guide, args, kwargs, self.data_plate)
        for caught_warning in caught:
            # Pyro's "Found vars in model but not guide" names the model's enumerated sites
            if not (
                traces.enumerated.model and str(caught_warning.message).startswith("Found vars in model but not guide")
            ):
                warnings.warn_explicit(
                    caught_warning.message, caught_warning.category, caught_warning.filename, caught_warning.lineno
                )
        if not traces.enumerated:
            self._plain_pairs.add(pair)
            return traces
        if self.symmetric and traces.enumerated.model and self.decoder_gradient == "score":
            raise NotImplementedError(
                f"Trace_MIM(decoder_gradient='score') does not sum out enumerated model latents "
                f"{traces.enumerated.model}: their score-function terms on the decoder side are not "
                f"implemented. Use the default decoder_gradient='detach' (the decoder side's draws "
                f"held fixed), or drop the 'enumerate' hint and give the site a guide site."
            )
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        self._enumerated_pairs.add(pair)
        if state is not None:
            set_rng_state(state)
        return encoder_traces(self.max_plate_nesting, model, guide, args, kwargs, self.data_plate, enum=True)

    def _mim_traces(self, model, guide, raw_guide, args, kwargs, pair) -> MIMTraces:
        with on_side("encoder"):
            enc = self._encoder_traces(model, guide, args, kwargs, pair)
        enumerated = enc.enumerated or None  # None: the traces are not enumerated (nor packed)
        if not self.symmetric:
            return MIMTraces(enc.model, enc.guide, data_plate=enc.data_plate, enumerated=enumerated)
        # The re-encoding draw is enumerated as well, except under the score decoder gradient
        # with enumeration in the guide only: the prior draws' score-function terms need the
        # re-encoding's cost per datum, which the exact expectation does not keep apart.
        enumerate_re_encoding = enumerated is not None and (bool(enumerated.model) or self.decoder_gradient == "detach")
        # a pair's first symmetric run checks that the model draws its data ancestrally
        check_ancestral = pair not in self._ancestral_pairs and not torch.jit.is_tracing()
        with on_side("decoder"):
            dec = decoder_traces(
                model,
                guide,
                raw_guide,
                args,
                kwargs,
                enc,
                max_plate_nesting=self.max_plate_nesting,
                re_encode=isinstance(self.q_x, str) and self.q_x == "marginal",
                enumerate_re_encoding=enumerate_re_encoding,
                guide_inputs=self.guide_inputs,
                check_ancestral=check_ancestral,
                hold_guide=self.guide_gradient == "encoder_side",
            )
        if check_ancestral:
            self._ancestral_pairs.add(pair)
        return MIMTraces(
            enc.model,
            enc.guide,
            dec.model,
            dec.guide,
            dec.re_guide,
            dec.re_model,
            data_plate=enc.data_plate,
            enumerated=enumerated,
            dec_summed=dec.summed,
            re_enumerated=enumerate_re_encoding,
        )

    # ------------------------------------------------------------------ maths
    def _sides(self, traces: MIMTraces, beta) -> list[Side]:
        half = 0.5 if self.symmetric else 1.0
        marginal = isinstance(self.q_x, str) and self.q_x == "marginal"
        learned = callable(self.q_x) and not isinstance(self.q_x, str)
        plate = traces.data_plate

        def local(site):
            return not is_global(site, plate)

        def global_(site):
            return is_global(site, plate)

        loo = self.score_baseline == "leave_one_out"
        enc = Side("encoder", loo)
        # l = -1/2 [log p(x,z) + beta (log q(z|x) + log q(x))], z ~ q(z|x).
        # With the one-sample marginal at z' = z, log q(z|x) cancels exactly.
        model_weight = -0.5 * half * ((1.0 + beta) if marginal else 1.0)
        guide_weight = 0.0 if marginal else -0.5 * half * beta
        if traces.enumerated is not None:
            # global latents keep the ELBO's -log q(theta), weighted like log p
            expectation = enumerated_expectation(
                traces.enc_model, traces.enc_guide, plate, model_weight, guide_weight, -model_weight
            )
            enc.add_total("expectation over the enumerated sites", expectation)
        else:
            enc.add_evaluated("model", traces.enc_model, model_weight, sites=local)
            # (weight 0 with the one-sample marginal: only the score-function terms remain,
            # and a compiled loss drops the log-density's operations)
            enc.add_sampled("guide", traces.enc_guide, None if marginal else guide_weight, sites=local)
        if plate is not None and traces.enumerated is None:
            # Global latents keep ELBO-style terms, log p(theta) - log q(theta), with the
            # weight the encoder side gives log p(x, z): prior and likelihood of the globals
            # keep the ELBO's relative weight.
            enc.add_evaluated("model", traces.enc_model, model_weight, sites=global_)
            enc.add_sampled("guide", traces.enc_guide, -model_weight, sites=global_)
        if learned:
            # log q(x) at the data does not depend on any encoder-side draw.
            enc.add_learned_qx(
                cast(Callable, self.q_x), observed_sites(traces.enc_model), -0.5 * half * beta, in_cost=False
            )
        if not self.symmetric:
            return [enc]

        # The decoder side holds the globals at the encoder side's (detached) draw, so
        # only the local terms appear here.
        dec = Side("decoder", loo)
        generated = observed_sites(traces.dec_model)
        detach = self.decoder_gradient == "detach"
        if traces.dec_summed is not None:
            # log p(z, x) with the model's enumerated latents summed out, at the draw (held fixed)
            dec.add_total("model (enumerated sites summed out)", -0.5 * half * summed_local(traces))
        else:
            dec.add_sampled("model", traces.dec_model, -0.5 * half, detach=detach, sites=local)
        dec.add_evaluated("guide", traces.dec_guide, -0.5 * half * beta, sites=local)
        if marginal:
            # log q(x) ~= log p(x|z') + log p(z') - log q(z'|x), z' ~ q(z|x).
            if traces.re_enumerated:
                # exact over the guide's enumerated sites, the model's summed out
                assert traces.re_model is not None and traces.re_guide is not None  # re-encoded (q_x="marginal")
                weight = 0.5 * half * beta
                expectation = enumerated_expectation(traces.re_model, traces.re_guide, plate, -weight, weight)
                dec.add_total("re-encoding (enumerated sites summed out)", expectation)
            else:
                dec.add_evaluated("re-encoded model", traces.re_model, -0.5 * half * beta, sites=local)
                dec.add_sampled("re-encoding guide", traces.re_guide, 0.5 * half * beta, sites=local)
        elif learned:
            dec.add_learned_qx(cast(Callable, self.q_x), generated, -0.5 * half * beta, in_cost=True)
        return [enc, dec]

    def _particle(self, traces: MIMTraces, beta):
        """Loss value, surrogate loss and score-function statistics of one
        (possibly vectorised) particle."""
        sides = self._sides(traces, beta)
        loss = sum(side.value for side in sides)
        surrogate = sum(side.surrogate for side in sides)
        stats = []
        for side in sides:
            score_surrogate, side_stats = side.score_terms()
            surrogate = surrogate + score_surrogate
            stats.extend(side_stats)
        if not torch.jit.is_tracing():
            if self.check_finite and torch.is_grad_enabled():
                check_not_collapsed(traces)
            if self.check_finite and torch.is_tensor(loss) and not torch.isfinite(loss).all():
                bad_data = non_finite_data(traces.enc_model, None, (), {})
                if bad_data is not None:
                    raise NonFiniteDataError(bad_data)
                raise NonFiniteLossError(describe_non_finite(sides))
            if torch.is_grad_enabled():
                warn_collapsing_priors(traces.enc_model, self._warned_priors)
        return loss, surrogate, stats

    def _loss_parts(self, model, guide, args, kwargs, beta, backward: bool = False):
        """Loss value, surrogate loss and per-site ``[score sum, cost mean]``.

        With ``backward`` each particle's surrogate (with the baselines of this
        step) is backpropagated as soon as it is built, as ``Trace_ELBO``
        does, so particles do not all hold their graphs at once; the returned
        surrogate is then 0.
        """
        loss: Any = 0.0
        surrogate: Any = 0.0
        stats: dict[str, list] = {}
        # score sums add up over particles (divided by num_particles like the
        # loss); cost means average over the traces yielded (one if vectorised)
        n_traces = 1 if self.vectorize_particles else self.num_particles
        for traces in self._get_traces(model, guide, args, kwargs):
            loss_p, surrogate_p, stats_p = self._particle(traces, beta)
            loss = loss + loss_p / self.num_particles
            part = surrogate_p / self.num_particles
            for key, score_sum, cost_mean in stats_p:
                acc = stats.setdefault(key, [0.0, 0.0])
                acc[0] = acc[0] + score_sum / self.num_particles
                acc[1] = acc[1] + cost_mean / n_traces
            if backward:
                part = subtract_baselines(self, part, {k: s / self.num_particles for k, s, _ in stats_p})
                if getattr(part, "requires_grad", False):
                    part.backward(retain_graph=self.retain_graph)
            else:
                surrogate = surrogate + part
        return loss, surrogate, stats

    def _with_baselines(self, surrogate, stats: Mapping[str, list], update: bool):
        surrogate = subtract_baselines(self, surrogate, {key: score_sum for key, (score_sum, _) in stats.items()})
        if update:
            update_baselines(self, stats)
        return surrogate

    # ------------------------------------------------------------------ API
    def loss(self, model, guide, *args, **kwargs) -> float:
        """Estimate of the MIM loss (no gradients are computed)."""
        with torch.no_grad():
            loss, _, _ = self._loss_parts(model, guide, args, kwargs, self.beta)
        return float(torch.as_tensor(loss).item())

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """Loss whose gradient is the unbiased MIM gradient estimate."""
        loss, surrogate, stats = self._loss_parts(model, guide, args, kwargs, self.beta)
        # baselines learn from training steps only, not from evaluation under no_grad
        surrogate = self._with_baselines(surrogate, stats, update=torch.is_grad_enabled())
        loss = torch.as_tensor(loss)
        return loss.detach() + (surrogate - torch.as_tensor(surrogate).detach())

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Estimate of the MIM loss; backpropagates the surrogate loss."""
        loss, _, stats = self._loss_parts(model, guide, args, kwargs, self.beta, backward=True)
        update_baselines(self, stats)
        return float(torch.as_tensor(loss).detach().item())


class JitTrace_MIM(Trace_MIM):
    """:class:`Trace_MIM` with the loss and surrogate compiled by
    :func:`pyro.ops.jit.trace`, as :class:`~pyro.infer.JitTrace_ELBO` is.

    Same values and gradients as :class:`Trace_MIM` for a given random
    state, bit for bit, from the first call on: a signature's first call is
    the Python loss, after which its programs are traced (with random draws
    of their own, undone afterwards); the graph, its size bookkeeping folded
    into constants, runs unoptimised (op by op, with eager autograd's
    backward formulas). Compiling costs a traced run per distinct set of
    keyword arguments, input shapes (a traced graph holds plate sizes as
    constants, so a smaller last batch gets its own graph) and ``symmetric``
    setting; afterwards each step skips
    Python-side trace bookkeeping, which pays for small models where that
    overhead dominates. ``beta`` is passed to the compiled function as a
    tensor, so warm-up works without recompiling. The restrictions of
    ``JitTrace_ELBO`` apply: static model structure (Python control flow on
    tensor values is frozen at its first outcome), tensor inputs in
    ``*args``, non-tensor inputs in ``**kwargs``. An error while compiling is
    raised as :class:`CompilationError` (the original chained);
    ``compile = False`` then runs the Python loss instead, with the same
    settings and state. ``ignore_jit_warnings`` (default ``True`` here, unlike
    Pyro's) keeps PyTorch's deprecation and tracer warnings, which a user
    cannot act on, out of the console; ``False`` shows them. On a non-finite
    loss the step is replayed uncompiled from the same random state to name
    the offending site.
    """

    def __init__(self, *, ignore_jit_warnings: bool = True, **options: Any):
        super().__init__(ignore_jit_warnings=ignore_jit_warnings, **options)
        #: ``False``: run the Python loss (:class:`Trace_MIM`'s methods) instead.
        self.compile = True

    @classmethod
    def like(cls, loss: Trace_MIM) -> JitTrace_MIM:
        """A compiled loss with ``loss``'s settings and state (both read and
        update the same score-function baselines)."""
        if type(loss) is not Trace_MIM:
            raise TypeError(f"JitTrace_MIM.like takes a Trace_MIM, got {type(loss).__name__}")
        compiled = cls.__new__(cls)
        compiled.__dict__.update(loss.__dict__)
        compiled.ignore_jit_warnings = True
        compiled.compile = True
        return compiled

    def _compiled_parts(self, model, guide, args, kwargs):
        kwargs = keyed_kwargs(self, model, guide, args, kwargs)
        if getattr(self, "_compiled", None) is None:
            weakself = weakref.ref(self)
            # each graph's score-function sites, in the order of its outputs
            self._score_keys: dict[str, list[str]] = {}
            self._signatures: set = set()

            @trace(ignore_warnings=self.ignore_jit_warnings, jit_options=self.jit_options)
            def compiled(*args_beta, **kwargs):
                self = weakself()
                *args, beta = args_beta
                loss, surrogate, stats = self._loss_parts(model, guide, tuple(args), user_kwargs(kwargs), beta)
                self._score_keys[graph_signature(kwargs)] = list(stats)
                score_sums = tuple(torch.as_tensor(s) for s, _ in stats.values())
                cost_means = tuple(torch.as_tensor(c) for _, c in stats.values())
                return (torch.as_tensor(loss), torch.as_tensor(surrogate), score_sums, cost_means)

            self._compiled = compiled
        beta = torch.tensor(self.beta)
        # unoptimised execution: the graph runs op by op with eager autograd, so
        # values and gradients are bit for bit the Python loss's (the graph
        # optimiser's fused backward rounds differently, and switches in after
        # a few profiling runs, so results would depend on how often a graph
        # ran before, e.g. on whether a run was resumed); the time saved is
        # Pyro's Python-side bookkeeping, which the optimiser does not touch
        with warnings.catch_warnings(), torch.jit.optimized_execution(False):
            if self.ignore_jit_warnings:
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=FutureWarning)
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            signature = graph_signature(kwargs)
            rng = torch.get_rng_state()
            if signature not in self._signatures:
                outputs = self._compile(args, beta, kwargs)
                self._signatures.add(signature)
            else:
                outputs = self._compiled(*args, beta, **kwargs)
            loss, surrogate, score_sums, cost_means = outputs
        keys = self._score_keys[signature]
        stats = {k: [s, c] for k, s, c in zip(keys, score_sums, cost_means)}
        if self.check_finite and not torch.isfinite(loss).all():
            torch.set_rng_state(rng)
            with torch.no_grad():
                self._loss_parts(model, guide, args, user_kwargs(kwargs), self.beta)
            raise NonFiniteLossError(
                "JitTrace_MIM: the compiled loss is not finite, and an uncompiled "
                "replay did not reproduce it; run Trace_MIM for a site-level report."
            )
        return loss, surrogate, stats

    def _compile(self, args: tuple, beta: torch.Tensor, kwargs: dict) -> Any:
        """A new signature's first call: its result, and its graph compiled.

        With :class:`~pyromim.ops.jit.CompiledFunction` the result comes from one Python run
        (bit for bit what the graph computes; it also names the parameters the
        graph takes), and the graph is traced afterwards; tracing draws random
        numbers of its own, so the random state is then set to where the Python
        run left it. Pyro's compiled function (the fallback) runs the programs
        to compile, so there the random state is reset before the graph's first
        run. On an error while compiling the random state is as before the call.
        """
        state = get_rng_state()
        try:
            if isinstance(self._compiled, CompiledFunction):
                key = private.hashable_args_kwargs((*args, beta), kwargs)
                with poutine.block(), poutine.trace(param_only=True) as params:
                    outputs = self._compiled.fn(*args, beta, **kwargs)
                after = get_rng_state()
                try:
                    on_fresh_stack(self._compiled.compile, key, params.trace.nodes, (*args, beta), kwargs)
                finally:
                    set_rng_state(after)
                return outputs
            on_fresh_stack(self._compiled, *args, beta, **kwargs)
        except (NonFiniteLossError, NonFiniteDataError, TeacherForcingError):
            set_rng_state(state)
            raise
        except Exception as err:
            set_rng_state(state)
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise CompilationError(
                f"JitTrace_MIM could not compile this model/guide pair ({type(err).__name__}: {first_line})"
            ) from err
        set_rng_state(state)
        return self._compiled(*args, beta, **kwargs)

    def loss(self, model, guide, *args, **kwargs) -> float:
        if not self.compile:
            return super().loss(model, guide, *args, **kwargs)
        with torch.no_grad():
            loss, _, _ = self._compiled_parts(model, guide, args, kwargs)
        return float(loss.item())

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        if not self.compile:
            return super().differentiable_loss(model, guide, *args, **kwargs)
        loss, surrogate, stats = self._compiled_parts(model, guide, args, kwargs)
        surrogate = self._with_baselines(surrogate, stats, update=torch.is_grad_enabled())
        return loss.detach() + (surrogate - surrogate.detach())

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        if not self.compile:
            return super().loss_and_grads(model, guide, *args, **kwargs)
        loss, surrogate, stats = self._compiled_parts(model, guide, args, kwargs)
        surrogate = self._with_baselines(surrogate, stats, update=True)
        if surrogate.requires_grad:
            surrogate.backward(retain_graph=self.retain_graph)
        return float(loss.item())
