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
* ``"score"``: that part included (unbiased).

Why the biased one is the default: on discrete data the omitted part mostly
lowers the entropy ``H(x|z)`` of the generated data (at a consistent optimum
the decoder side equals ``H(z) + H(x|z)`` up to constants), and a discrete
decoder reaches ``H(x|z) ~ 0`` by emitting a few near-deterministic images
whatever ``z`` is. On binarised digits, with the unbiased gradient the
decoder's log-probability of its own draws rose to about -2 nats per image
(-14 with ``"detach"``) while the encoder lost the ability to recover ``z``
from them (9 % against 77 % of the latent variance), and the test NLL was 29
nats against 19; with 8 particles
(an eighth of the variance) the result was the same, so this is the objective's
gradient, not estimator noise. Continuous decoders are unaffected: their draws
are reparameterised.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pyro
import pyro.ops.jit
import torch
from pyro.distributions.util import is_identically_zero
from pyro.infer.elbo import ELBO, ELBOModule
from pyro.infer.util import MultiFrameTensor
from pyro.nn import PyroModule

from pyromim.infer.guide_inputs import GuideInputs
from pyromim.infer.mim_traces import MIMTraces, decoder_traces, encoder_traces, sample_sites

__all__ = ["Trace_MIM", "JitTrace_MIM", "NonFiniteLossError", "CollapsingPriorWarning"]

QX = Literal["marginal", "data"] | Callable[..., torch.Tensor]


class NonFiniteLossError(ValueError):
    """A MIM loss term is NaN or infinite; the message names the site and side."""


class CollapsingPriorWarning(UserWarning):
    """A learned prior's scale is shrinking towards zero under MIM (see :class:`Trace_MIM`)."""


#: A learned prior scale below this (in any latent dimension) is reported once per site.
PRIOR_SCALE_WARNING = 1e-3


class _MIMModule(ELBOModule):
    """:class:`~pyro.infer.elbo.ELBOModule` that also owns a learned ``q(x)``."""

    def __init__(self, model, guide, elbo):
        super().__init__(model, guide, elbo)
        if isinstance(elbo.q_x, torch.nn.Module):
            self.q_x = elbo.q_x


class _Side:
    """Weighted log-probability terms of one side of the MIM loss.

    ``value`` sums the terms, ``surrogate`` sums their differentiable parts, and
    ``cost`` keeps the detached terms by plate for score-function estimators.
    """

    def __init__(self, name: str):
        self.name = name
        self.value: Any = 0.0
        self.surrogate: Any = 0.0
        self.cost = MultiFrameTensor()
        self.terms: list[tuple[str, torch.Tensor]] = []
        self.sampled: list[tuple[str, dict]] = []

    def add(self, label, log_prob, weight, stack, differentiable=None, in_cost=True):
        term = weight * log_prob
        self.terms.append((label, log_prob))
        self.value = self.value + term.sum()
        if differentiable is None:
            self.surrogate = self.surrogate + term.sum()
        elif not is_identically_zero(differentiable):
            self.surrogate = self.surrogate + (weight * differentiable).sum()
        if in_cost:
            self.cost.add((stack, term.detach()))

    def add_evaluated(self, role, trace, weight):
        """Sites whose values are given: the full log-prob is differentiable."""
        for name, site in _all_sample_sites(trace):
            self.add(f"{role} site '{name}'", site["log_prob"], weight, site["cond_indep_stack"])

    def add_sampled(self, role, trace, weight, detach=False):
        """Sites drawn on this side: pathwise part via ``entropy_term``, and a
        score-function term, unless ``detach`` treats non-reparameterised draws
        as fixed data (full log-prob gradient, no score function)."""
        for name, site in _all_sample_sites(trace):
            parts = site["score_parts"]
            detached = detach and not is_identically_zero(parts.score_function)
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
        """Surrogate of the score-function terms, and per site the summed score
        and mean cost used by the baseline."""
        surrogate: Any = 0.0
        stats = []
        for key, site in self.sampled:
            cost = self.cost.sum_to(site["cond_indep_stack"])
            score = site["score_parts"].score_function
            surrogate = surrogate + (cost * score).sum()
            stats.append((key, score.sum(), torch.as_tensor(cost).mean().detach()))
        return surrogate, stats


def _all_sample_sites(trace):
    """Every sample site of ``trace``, auxiliary ones included (``log q`` counts them)."""
    return sample_sites(trace, include_auxiliary=True).items()


def _observed_sites(trace, generated: bool):
    """Observed sites; on the decoder side, those un-conditioned to generate data."""
    return {
        name: site
        for name, site in _all_sample_sites(trace)
        if (site["infer"].get("was_observed", False) if generated else site["is_observed"])
    }


class Trace_MIM(ELBO):
    r"""Mutual Information Machine loss for any Pyro model/guide pair.

    A drop-in replacement for :class:`~pyro.infer.Trace_ELBO`::

        svi = SVI(model, guide, optim, loss=Trace_MIM())

    **Value.** With ``l(x,z) = -1/2 [log p(x|z) + log p(z) + beta (log q(z|x)
    + log q(x))]``, the symmetric loss is ``1/2 (E_enc l + E_dec l)``, the
    asymmetric (A-MIM) loss ``E_enc l``; terms are summed over data plates with
    Pyro's subsampling scale and averaged over particles. MIM has
    ``+ log q(z|x)`` where the ELBO has ``- log q(z|x)``: it rewards an
    informative, low-entropy encoder.

    **Decoder side.** The model runs with observed sites un-conditioned; the
    guide is then evaluated at the generated data with its latent sites (and
    subsample indices) replayed from the model's draw. Generated data reaches
    the guide through the argument named like the observed site, the argument
    that is the observed tensor, or ``guide_inputs`` (see
    :mod:`pyromim.infer.guide_inputs`). Under ``vectorize_particles`` generated
    data gains a particle dimension on the left: guides must size data plates
    with ``x.shape[-2]``-style indexing from the right.

    **Gradients**: pathwise through reparameterised draws; score-function
    terms with plate-aware costs and a running-mean baseline for the guide's
    non-reparameterisable draws (discrete latents). Non-reparameterisable
    draws on the decoder side (generated Bernoulli pixels, tokens, counts;
    discrete latents drawn from the prior) are held fixed by default
    (``decoder_gradient="detach"``, the MIM reference code's choice, biased);
    ``decoder_gradient="score"`` adds their score-function
    terms and is unbiased for the expected loss, but on discrete data that
    exact gradient makes the decoder emit a few near-deterministic outputs
    that carry no information about ``z`` (see the module docstring for the
    measurements).

    :param symmetric: symmetric MIM (default) or A-MIM (encoder side only).
    :param q_x: ``"marginal"`` (one-sample estimate through the model),
        ``"data"`` (anchored to the data distribution: a dropped constant;
        A-MIM only) or a callable taking the observed sites' values as keyword
        arguments (``q_x(x=...)``) and returning per-datum ``log q(x)`` with the
        (first) observed site's batch shape. A plain ``nn.Module`` is
        registered with ``pyro.module`` so ``SVI`` trains it.
    :param beta: weight of ``log q(z|x) + log q(x)`` in [0, 1]; may be changed
        between steps (warm-up).
    :param num_particles: number of samples per estimate.
    :param vectorize_particles: draw particles in one vectorised pass.
    :param max_plate_nesting: as in Pyro.
    :param decoder_gradient: ``"detach"`` (default; the decoder side's
        non-reparameterisable draws held fixed, biased) or ``"score"``
        (unbiased). Only matters for models with discrete observations or
        discrete latents in the model.
    :param baseline_decay: decay of the running-mean baseline of each
        score-function site's cost; ``None`` disables baselines.
    :param guide_inputs: ``{observed site: guide parameter}`` or a callable
        ``(generated, args, kwargs) -> (args, kwargs)`` overriding how
        generated data is passed to the guide.
    :param check_finite: raise :class:`NonFiniteLossError`, naming the site
        and side, when a term is NaN or infinite.

    **Learned priors.** MIM's loss has no lower bound when a prior's scale is
    learned without a floor: shrinking the latent space raises ``log p(z)``
    and ``log q(z|x)`` together, and on the decoder side the pathwise gradient
    of ``-log p(z)`` at the prior's own draws lowers its entropy. The code is
    then squeezed onto a point while the loss runs to minus infinity (a
    conditional prior network went from scale 1.0 to 0.015 in 500 steps).
    When a learned prior scale (a Normal's ``scale`` or a mixture's
    ``scales`` that requires grad) falls below ``1e-3``, a
    :class:`CollapsingPriorWarning` names the site once; floor the prior's
    scale (``softplus(raw) + floor``, as pyromim's Gaussian heads floor the
    encoder's) or keep it fixed. A floored encoder bounds the shrinkage.

    **References**

    * M. Livne, K. Swersky, D. J. Fleet, "MIM: Mutual Information Machine",
      arXiv:1910.03175.
    * M. Livne, K. Swersky, D. J. Fleet, "High Mutual Information in
      Representation Learning with Symmetric Variational Inference",
      arXiv:1910.04153.
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
        baseline_decay: float | None = 0.9,
        guide_inputs: GuideInputs = None,
        check_finite: bool = True,
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
        if not (isinstance(q_x, str) and q_x in ("marginal", "data")) and not callable(q_x):
            raise ValueError(f"q_x must be 'marginal', 'data' or a callable returning per-datum log q(x); got {q_x!r}.")
        if decoder_gradient not in ("detach", "score"):
            raise ValueError(
                f"decoder_gradient must be 'detach' (default: generated discrete "
                f"data held fixed, as the reference code does) or 'score' (unbiased "
                f"score-function terms); got {decoder_gradient!r}."
            )
        if baseline_decay is not None and not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must lie in [0, 1) or be None; got {baseline_decay!r}.")
        self.q_x = q_x
        self.symmetric = symmetric
        self.beta = beta
        self.decoder_gradient = decoder_gradient
        self.baseline_decay = baseline_decay
        self.guide_inputs = guide_inputs
        self.check_finite = check_finite
        self.baselines: dict[str, float] = {}
        self._warned_priors: set[str] = set()

    # ------------------------------------------------------------------ options
    @property
    def symmetric(self) -> bool:
        return self._symmetric

    @symmetric.setter
    def symmetric(self, value: bool) -> None:
        if value and isinstance(self.q_x, str) and self.q_x == "data":
            raise ValueError(
                "q_x='data' anchors q(x) to the data distribution, which has no "
                "density at data generated by the model, so it only works with "
                "the asymmetric loss: use Trace_MIM(symmetric=False, q_x='data'), "
                "or q_x='marginal' / a learned q(x) callable with symmetric=True."
            )
        self._symmetric = bool(value)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"beta must lie in [0, 1]; got {value}.")
        self._beta = value

    def __call__(self, model: torch.nn.Module, guide: torch.nn.Module) -> ELBOModule:
        return _MIMModule(model, guide, self)

    # ------------------------------------------------------------------ traces
    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("Trace_MIM builds its traces in _get_traces")

    def _get_traces(self, model, guide, args, kwargs):
        raw_guide = guide
        if self.vectorize_particles:
            if self.max_plate_nesting == float("inf"):
                self._guess_max_plate_nesting(model, guide, args, kwargs)
            model = self._vectorized_num_particles(model)
            guide = self._vectorized_num_particles(guide)
            yield self._mim_traces(model, guide, raw_guide, args, kwargs)
        else:
            for _ in range(self.num_particles):
                yield self._mim_traces(model, guide, raw_guide, args, kwargs)

    def _mim_traces(self, model, guide, raw_guide, args, kwargs) -> MIMTraces:
        enc_model, enc_guide = encoder_traces(self.max_plate_nesting, model, guide, args, kwargs)
        if not self.symmetric:
            return MIMTraces(enc_model, enc_guide)
        dec = decoder_traces(
            model,
            guide,
            raw_guide,
            args,
            kwargs,
            enc_model,
            re_encode=isinstance(self.q_x, str) and self.q_x == "marginal",
            max_plate_nesting=self.max_plate_nesting,
            guide_inputs=self.guide_inputs,
        )
        return MIMTraces(enc_model, enc_guide, *dec)

    # ------------------------------------------------------------------ maths
    def _learned_qx(self, side: _Side, observed: Mapping[str, dict], weight, in_cost):
        if isinstance(self.q_x, torch.nn.Module) and not isinstance(self.q_x, PyroModule):
            pyro.module("pyromim_q_x", self.q_x)
        if not observed:
            raise ValueError("a learned q_x needs a model with an observed site.")
        values = {name: site["value"] for name, site in observed.items()}
        first = next(iter(observed.values()))
        log_qx = self.q_x(**values)
        expected = first["log_prob"].shape
        try:
            fits = torch.broadcast_shapes(log_qx.shape, expected) == expected
        except (AttributeError, RuntimeError):
            fits = False
        if not fits:
            shape = tuple(log_qx.shape) if torch.is_tensor(log_qx) else type(log_qx)
            raise ValueError(
                f"q_x callable returned shape {shape} on the {side.name} side; it "
                f"must return per-datum log q(x) with the batch shape "
                f"{tuple(expected)} of observed site '{first['name']}' (no event "
                f"dims: sum log-densities over each datum's dimensions)."
            )
        log_qx = log_qx.expand(expected)
        mask = first.get("mask")
        if mask is not None and mask is not True:
            log_qx = torch.where(mask, log_qx, log_qx.new_zeros(()))
        scale = first.get("scale", 1.0)
        side.add("learned q_x", log_qx * scale, weight, first["cond_indep_stack"], in_cost=in_cost)

    def _sides(self, traces: MIMTraces, beta) -> list[_Side]:
        half = 0.5 if self.symmetric else 1.0
        marginal = isinstance(self.q_x, str) and self.q_x == "marginal"
        learned = callable(self.q_x) and not isinstance(self.q_x, str)

        enc = _Side("encoder")
        # l = -1/2 [log p(x,z) + beta (log q(z|x) + log q(x))], z ~ q(z|x).
        # With the one-sample marginal at z' = z, log q(z|x) cancels exactly.
        model_weight = -0.5 * half * ((1.0 + beta) if marginal else 1.0)
        enc.add_evaluated("model", traces.enc_model, model_weight)
        guide_weight = 0.0 if marginal else -0.5 * half * beta
        enc.add_sampled("guide", traces.enc_guide, guide_weight)
        if learned:
            # log q(x) at the data does not depend on any encoder-side draw.
            self._learned_qx(enc, _observed_sites(traces.enc_model, False), -0.5 * half * beta, in_cost=False)
        if not self.symmetric:
            return [enc]

        dec = _Side("decoder")
        generated = _observed_sites(traces.dec_model, True)
        dec.add_sampled("model", traces.dec_model, -0.5 * half, detach=self.decoder_gradient == "detach")
        dec.add_evaluated("guide", traces.dec_guide, -0.5 * half * beta)
        if marginal:
            # log q(x) ~= log p(x|z') + log p(z') - log q(z'|x), z' ~ q(z|x).
            dec.add_evaluated("re-encoded model", traces.re_model, -0.5 * half * beta)
            dec.add_sampled("re-encoding guide", traces.re_guide, 0.5 * half * beta)
        elif learned:
            self._learned_qx(dec, generated, -0.5 * half * beta, in_cost=True)
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
            if self.check_finite and torch.is_tensor(loss) and not torch.isfinite(loss).all():
                raise NonFiniteLossError(_describe_non_finite(sides))
            if torch.is_grad_enabled():
                self._check_prior_scales(traces.enc_model)
        return loss, surrogate, stats

    def _check_prior_scales(self, model_trace) -> None:
        for name, site in _all_sample_sites(model_trace):
            if site["is_observed"] or name in self._warned_priors:
                continue
            smallest = _smallest_learned_scale(site["fn"])
            if smallest is not None and smallest < PRIOR_SCALE_WARNING:
                self._warned_priors.add(name)
                warnings.warn(
                    f"Trace_MIM: the learned prior of latent site '{name}' has shrunk its scale to "
                    f"{smallest:.2g}. MIM's loss has no lower bound when a prior's scale is learned "
                    f"without a floor (shrinking the latent space raises log p(z) and log q(z|x) "
                    f"together), so the code is being squeezed onto a point while the loss runs to "
                    f"minus infinity. Floor the prior's scale (e.g. softplus(raw) + 0.01) or keep it "
                    f"fixed.",
                    CollapsingPriorWarning,
                    stacklevel=2,
                )

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
                part = self._subtract_baselines(part, {k: s / self.num_particles for k, s, _ in stats_p})
                if getattr(part, "requires_grad", False):
                    part.backward(retain_graph=self.retain_graph)
            else:
                surrogate = surrogate + part
        return loss, surrogate, stats

    def _subtract_baselines(self, surrogate, score_sums: Mapping[str, Any]):
        """Subtract ``b * score`` for each score-function site, ``b`` a running
        mean of past costs (independent of the current draw, hence unbiased)."""
        if self.baseline_decay is None:
            return surrogate
        for key, score_sum in score_sums.items():
            b = self.baselines.get(key)
            if b is not None:
                surrogate = surrogate - b * score_sum
        return surrogate

    def _update_baselines(self, stats: Mapping[str, list]) -> None:
        if self.baseline_decay is None:
            return
        for key, (_, cost_mean) in stats.items():
            c = float(torch.as_tensor(cost_mean).item())
            if math.isfinite(c):
                b, d = self.baselines.get(key), self.baseline_decay
                self.baselines[key] = c if b is None else d * b + (1 - d) * c

    def _with_baselines(self, surrogate, stats: Mapping[str, list], update: bool):
        surrogate = self._subtract_baselines(surrogate, {key: score_sum for key, (score_sum, _) in stats.items()})
        if update:
            self._update_baselines(stats)
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
        self._update_baselines(stats)
        return float(torch.as_tensor(loss).detach().item())


def _smallest_learned_scale(fn) -> float | None:
    """Smallest element of a Normal's ``scale`` / a mixture's ``scales`` that requires grad, else None."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    for attribute in ("scale", "scales"):
        scale = getattr(fn, attribute, None)
        if torch.is_tensor(scale) and scale.requires_grad and scale.numel():
            return float(scale.detach().min().item())
    return None


def _describe_non_finite(sides: list[_Side]) -> str:
    bad = []
    for side in sides:
        for label, term in side.terms:
            if torch.is_tensor(term) and not torch.isfinite(term).all():
                n_bad = int((~torch.isfinite(term)).sum().item())
                bad.append(f"{label} on the {side.name} side ({n_bad} of {term.numel()} entries non-finite)")
    where = "; ".join(bad) if bad else "an intermediate sum (terms are finite)"
    return (
        f"Trace_MIM: non-finite loss term: {where}. Check the distribution "
        f"parameters at that site (e.g. a zero scale, probabilities of exactly 0 "
        f"or 1, a log-variance without a floor) and the data's support."
    )


class JitTrace_MIM(Trace_MIM):
    """:class:`Trace_MIM` with the loss and surrogate compiled by
    :func:`pyro.ops.jit.trace`, as :class:`~pyro.infer.JitTrace_ELBO` is.

    Same values and gradients as :class:`Trace_MIM` for a given random state.
    Compiling costs one traced run per distinct set of keyword arguments and
    ``symmetric`` setting; afterwards each step skips Python-side trace
    bookkeeping, which pays for small models where that overhead dominates.
    ``beta`` is passed to the compiled function as a tensor, so warm-up works
    without recompiling. The restrictions of ``JitTrace_ELBO`` apply: static
    model structure, tensor inputs in ``*args``, non-tensor inputs in
    ``**kwargs``. ``ignore_jit_warnings`` (default ``True`` here, unlike
    Pyro's) keeps PyTorch's deprecation and tracer warnings, which a user
    cannot act on, out of the console; ``False`` shows them. On a non-finite
    loss the step is replayed uncompiled from the same random state to name
    the offending site.
    """

    def __init__(self, *, ignore_jit_warnings: bool = True, **options: Any):
        super().__init__(ignore_jit_warnings=ignore_jit_warnings, **options)

    def _compiled_parts(self, model, guide, args, kwargs):
        kwargs = dict(kwargs)
        kwargs["_pyro_model_id"] = id(model)
        kwargs["_pyro_guide_id"] = id(guide)
        kwargs["_pyromim_symmetric"] = self.symmetric
        if getattr(self, "_compiled", None) is None:
            weakself = weakref.ref(self)
            self._score_keys: dict[bool, list[str]] = {}

            @pyro.ops.jit.trace(ignore_warnings=self.ignore_jit_warnings, jit_options=self.jit_options)
            def compiled(*args_beta, **kwargs):
                kwargs.pop("_pyro_model_id")
                kwargs.pop("_pyro_guide_id")
                symmetric = kwargs.pop("_pyromim_symmetric")
                self = weakself()
                *args, beta = args_beta
                loss, surrogate, stats = self._loss_parts(model, guide, tuple(args), kwargs, beta)
                self._score_keys[symmetric] = list(stats)
                score_sums = tuple(torch.as_tensor(s) for s, _ in stats.values())
                cost_means = tuple(torch.as_tensor(c) for _, c in stats.values())
                return (torch.as_tensor(loss), torch.as_tensor(surrogate), score_sums, cost_means)

            self._compiled = compiled
        beta = torch.tensor(self.beta)
        with warnings.catch_warnings():
            if self.ignore_jit_warnings:
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=FutureWarning)
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            rng = torch.get_rng_state()
            loss, surrogate, score_sums, cost_means = self._compiled(*args, beta, **kwargs)
        keys = self._score_keys[self.symmetric]
        stats = {k: [s, c] for k, s, c in zip(keys, score_sums, cost_means)}
        if self.check_finite and not torch.isfinite(loss).all():
            torch.set_rng_state(rng)
            with torch.no_grad():
                self._loss_parts(model, guide, args, _user_kwargs(kwargs), self.beta)
            raise NonFiniteLossError(
                "JitTrace_MIM: the compiled loss is not finite, and an uncompiled "
                "replay did not reproduce it; run Trace_MIM for a site-level report."
            )
        return loss, surrogate, stats

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            loss, _, _ = self._compiled_parts(model, guide, args, kwargs)
        return float(loss.item())

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss, surrogate, stats = self._compiled_parts(model, guide, args, kwargs)
        surrogate = self._with_baselines(surrogate, stats, update=torch.is_grad_enabled())
        return loss.detach() + (surrogate - surrogate.detach())

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss, surrogate, stats = self._compiled_parts(model, guide, args, kwargs)
        surrogate = self._with_baselines(surrogate, stats, update=True)
        if surrogate.requires_grad:
            surrogate.backward(retain_graph=self.retain_graph)
        return float(loss.item())


def _user_kwargs(kwargs: Mapping[str, Any]) -> dict:
    """The caller's keyword arguments, without the compiled path's cache keys."""
    return {k: v for k, v in kwargs.items() if not k.startswith(("_pyro_", "_pyromim_"))}
