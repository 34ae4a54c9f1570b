"""The objectives a spec can be trained with, by name: the registry :data:`OBJECTIVES`.

===========  ==========================================  =============================================
name         loss                                        per-sample term (``beta`` warmed up to 1)
===========  ==========================================  =============================================
``elbo``     ``pyro.infer.Trace_ELBO()`` (VAE)           ``-[log p(x|z) + log p(z) - log q(z|x)]``
``amim``     ``Trace_MIM(symmetric=False, q_x=...)``     ``l(x, z)`` on encoder-side pairs only
``mim``      ``Trace_MIM(symmetric=True, q_x=...)``      ``1/2 (E_enc l + E_dec l)``
===========  ==========================================  =============================================

``mim_score`` is ``mim`` with ``decoder_gradient="score"`` (unbiased gradients
through generated discrete data; :class:`~pyromim.Trace_MIM` says why that is
not the default), ``mim_score_loo`` the same with leave-one-out baselines
(``score_baseline="leave_one_out"``), and ``mim_encoder_side`` is ``mim`` with
``guide_gradient="encoder_side"`` (the guide learns from the encoder side alone,
the decoder side trains the model; for decoders strong enough to ignore ``z``);
:func:`pyromim.experiments.compare` leaves these out unless asked.

with ``l(x, z) = -1/2 [log p(x|z) + log p(z) + beta (log q(z|x) + log q(x))]``.
``vae`` (the old spec files' word for the ELBO) is still accepted, with a
:class:`DeprecationWarning`, and read as ``elbo``.

``q_x`` (the spec's ``[training] q_x``): ``"marginal"`` (one-sample importance
estimate through the model), ``"data"`` (anchored to the data; A-MIM only) or
``"learned"`` (the model's own learned mixture ``model.marginal``).

``inverse_h=True`` is the MIM paper's joint-entropy ablation (the reference
code's ``--inv-H-loss``): ``elbo`` becomes "VAE + H"
(:class:`pyromim.infer.Trace_ELBO_plus_H`, the ELBO plus the encoder's joint
entropy) and ``amim``/``mim`` become "MIM - H"
(:class:`pyromim.infer.Trace_MIM_minus_H`, without the mixture's joint
entropy); both need ``q_x="marginal"``.

The spec's validation (``[training] objective``), the command line and
:func:`make_loss` all read :data:`OBJECTIVES`, so a new objective is one
:class:`Objective` entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The estimates of ``log q(x)`` that :class:`~pyromim.infer.Trace_MIM` takes by name
#: (``q_x=``; it also takes a callable).
Q_X_ESTIMATES: tuple[str, ...] = ("marginal", "data")
#: What a spec's ``[training] q_x`` and ``--q-x`` may name: an estimate, or ``"learned"``
#: (the model's own learned marginal).
Q_X_CHOICES: tuple[str, ...] = (*Q_X_ESTIMATES, "learned")
#: The estimators of the decoder side's gradient through non-reparameterised draws
#: (``Trace_MIM(decoder_gradient=...)``), the default first.
DECODER_GRADIENTS: tuple[str, ...] = ("detach", "score")
#: The baselines of score-function terms (``Trace_MIM(score_baseline=...)``), the default first.
SCORE_BASELINES: tuple[str, ...] = ("running_mean", "leave_one_out")
#: Which sides' terms train the guide (``Trace_MIM(guide_gradient=...)``), the default first.
GUIDE_GRADIENTS: tuple[str, ...] = ("both", "encoder_side")


@dataclass(frozen=True)
class Objective:
    """One objective: its legend name and how to make its loss.

    :param label: the human name, for tables and legends.
    :param make: ``(model, q_x, beta, inverse_h) -> loss``; ``q_x`` is already
        resolved (``"marginal"``, ``"data"`` or the model's learned marginal).
    :param compared: run by :func:`pyromim.experiments.compare` when no
        objectives are named (see :func:`compared_objectives`).
    """

    label: str
    make: Callable[[Any, Any, float, bool], Any]
    compared: bool = True


# The losses are imported when made: the registry's names and labels (the command line's
# help and argument errors) need no torch.


def _elbo(model: Any, q_x: Any, beta: float, inverse_h: bool) -> Any:
    from pyro.infer import Trace_ELBO

    from pyromim.infer.entropy_ablation import Trace_ELBO_plus_H

    return Trace_ELBO_plus_H() if inverse_h else Trace_ELBO()


def _mim(symmetric: bool, **options: Any) -> Callable[[Any, Any, float, bool], Any]:
    def make(model: Any, q_x: Any, beta: float, inverse_h: bool) -> Any:
        from pyromim.infer.entropy_ablation import Trace_MIM_minus_H
        from pyromim.infer.trace_mim import Trace_MIM

        if inverse_h:
            return Trace_MIM_minus_H(symmetric=symmetric, beta=beta)
        if q_x == "data" and symmetric:
            raise ValueError(
                "q_x = 'data' only works with the 'amim' objective (decoder-side samples of 'mim' need q(x) at "
                "generated x); use q_x = 'marginal' or objective 'amim'"
            )
        return Trace_MIM(symmetric=symmetric, q_x=q_x, beta=beta, **options)

    return make


#: Objective names accepted everywhere (spec files, command line, :func:`pyromim.experiments.run`).
OBJECTIVES: dict[str, Objective] = {
    "elbo": Objective("VAE (ELBO)", _elbo),
    "amim": Objective("A-MIM", _mim(symmetric=False)),
    "mim": Objective("MIM", _mim(symmetric=True)),
    # the unbiased decoder-side gradient, for comparisons (see Trace_MIM for why it is not the default)
    "mim_score": Objective("MIM (score gradient)", _mim(symmetric=True, decoder_gradient="score"), compared=False),
    # the same with each draw's baseline the mean cost of the other draws of its plate (see Side.score_parts)
    "mim_score_loo": Objective(
        "MIM (score gradient, leave-one-out baseline)",
        _mim(symmetric=True, decoder_gradient="score", score_baseline="leave_one_out"),
        compared=False,
    ),
    # the guide trained by the encoder side alone (for decoders strong enough to ignore z; see Trace_MIM)
    "mim_encoder_side": Objective(
        "MIM (guide from the encoder side)", _mim(symmetric=True, guide_gradient="encoder_side"), compared=False
    ),
}
#: Old names still read, with a deprecation warning: old name -> name.
DEPRECATED_OBJECTIVES = {"vae": "elbo"}


def compared_objectives() -> tuple[str, ...]:
    """The objectives :func:`pyromim.experiments.compare` runs by default: ``elbo``, ``amim``, ``mim``."""
    return tuple(name for name, objective in OBJECTIVES.items() if objective.compared)


def objective_label(name: str) -> str:
    """The human name of objective ``name`` (``"MIM"``, ``"VAE (ELBO)"``, ...)."""
    return OBJECTIVES[objective_name(name)].label


def objective_name(name: str) -> str:
    """The registered objective name for ``name`` (case-insensitive; ``vae`` warns and means ``elbo``)."""
    key = str(name).strip().lower()
    if key in DEPRECATED_OBJECTIVES:
        warnings.warn(
            f"objective {name!r} is deprecated: call it {DEPRECATED_OBJECTIVES[key]!r}",
            DeprecationWarning,
            stacklevel=2,
        )
        key = DEPRECATED_OBJECTIVES[key]
    if key not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return key


def make_loss(objective: str, model: Any, *, q_x: str = "marginal", beta: float = 1.0, inverse_h: bool = False) -> Any:
    """A fresh Pyro loss for ``objective`` on ``model`` (see the module docstring).

    :param q_x: ``"marginal"``, ``"data"`` or ``"learned"`` (ignored by ``elbo``).
    :param beta: the target MIM weight (training warms it up from 0).
    :param inverse_h: the joint-entropy ablation ("VAE + H" / "MIM - H").
    :raises ValueError: ``q_x="data"`` with symmetric ``mim``, or ``q_x="learned"``
        for a model without a learned marginal (``[model] marginal_components = 0``).
    """
    name = objective_name(objective)
    if inverse_h:
        if q_x != "marginal":
            raise ValueError(f"inverse_h (the joint-entropy ablation) needs q_x = 'marginal', got {q_x!r}")
        return OBJECTIVES[name].make(model, q_x, beta, True)
    if name == "elbo":
        return OBJECTIVES[name].make(model, q_x, beta, False)
    if q_x == "learned":
        if getattr(model, "marginal", None) is None:
            raise ValueError(
                "q_x = 'learned' needs a model with a learned marginal q(x): set [model] marginal_components > 0 "
                "in the spec, or use q_x = 'marginal'"
            )
        estimate: Any = model.marginal
    elif q_x in Q_X_ESTIMATES:
        estimate = q_x
    else:
        raise ValueError(f"unknown q_x {q_x!r}; choose one of {', '.join(map(repr, Q_X_CHOICES))}")
    return OBJECTIVES[name].make(model, estimate, beta, False)


__all__ = [
    "DECODER_GRADIENTS",
    "GUIDE_GRADIENTS",
    "DEPRECATED_OBJECTIVES",
    "Q_X_CHOICES",
    "Q_X_ESTIMATES",
    "OBJECTIVES",
    "Objective",
    "compared_objectives",
    "make_loss",
    "objective_label",
    "objective_name",
]
