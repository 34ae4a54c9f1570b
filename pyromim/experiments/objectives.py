"""The three objectives a spec can be trained with, by name.

===========  ==========================================  =============================================
name         loss                                        per-sample term (``beta`` warmed up to 1)
===========  ==========================================  =============================================
``elbo``     ``pyro.infer.Trace_ELBO()`` (VAE)           ``-[log p(x|z) + log p(z) - log q(z|x)]``
``amim``     ``Trace_MIM(symmetric=False, q_x=...)``     ``l(x, z)`` on encoder-side pairs only
``mim``      ``Trace_MIM(symmetric=True, q_x=...)``      ``1/2 (E_enc l + E_dec l)``
===========  ==========================================  =============================================

``mim_score`` is ``mim`` with ``decoder_gradient="score"`` (unbiased gradients
through generated discrete data; see :class:`pyromim.Trace_MIM` for why that is
not the default); it is not one of the objectives compared by default.

with ``l(x, z) = -1/2 [log p(x|z) + log p(z) + beta (log q(z|x) + log q(x))]``.
``vae`` (the spec files' word for the ELBO) is accepted as a synonym of ``elbo``.

``q_x`` (the spec's ``[training] q_x``): ``"marginal"`` (one-sample importance
estimate through the model), ``"data"`` (anchored to the data; A-MIM only) or
``"learned"`` (the model's own learned mixture ``model.marginal``).

``inverse_h=True`` is the MIM paper's joint-entropy ablation (the reference
code's ``--inv-H-loss``): ``elbo`` becomes "VAE + H"
(:class:`pyromim.infer.Trace_ELBO_plus_H`, the ELBO plus the encoder's joint
entropy) and ``amim``/``mim`` become "MIM - H"
(:class:`pyromim.infer.Trace_MIM_minus_H`, without the mixture's joint
entropy); both need ``q_x="marginal"``.
"""

from __future__ import annotations

from typing import Any

from pyro.infer import Trace_ELBO

from pyromim.infer import Trace_ELBO_plus_H, Trace_MIM, Trace_MIM_minus_H
from pyromim.models import LatentVariableModel

#: Objective names accepted everywhere (command line, :func:`pyromim.experiments.run`).
OBJECTIVES: tuple[str, ...] = ("elbo", "amim", "mim")
#: Accepted too, but not compared by default.
EXTRA_OBJECTIVES: tuple[str, ...] = ("mim_score",)
_SYNONYMS = {"vae": "elbo"}
#: The spec files' name for each objective (``[training] objective``).
SPEC_OBJECTIVE = {"elbo": "vae", "amim": "amim", "mim": "mim", "mim_score": "mim"}
#: Human names, for tables and legends.
OBJECTIVE_LABELS = {"elbo": "VAE (ELBO)", "amim": "A-MIM", "mim": "MIM", "mim_score": "MIM (score gradient)"}


def objective_name(name: str) -> str:
    """The canonical objective name (``elbo``, ``amim`` or ``mim``) for ``name``."""
    key = _SYNONYMS.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in OBJECTIVES + EXTRA_OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)} ('vae' means 'elbo')")
    return key


def make_loss(
    objective: str, model: LatentVariableModel, *, q_x: str = "marginal", beta: float = 1.0, inverse_h: bool = False
) -> Any:
    """A fresh Pyro loss for ``objective`` on ``model`` (see the module docstring).

    :param q_x: ``"marginal"``, ``"data"`` or ``"learned"`` (ignored by ``elbo``).
    :param beta: the target MIM weight (training warms it up from 0).
    :param inverse_h: the joint-entropy ablation ("VAE + H" / "MIM - H").
    :raises ValueError: ``q_x="data"`` with symmetric ``mim``, or ``q_x="learned"``
        for a model without a learned marginal (``[model] marginal_components = 0``).
    """
    objective = objective_name(objective)
    if inverse_h:
        if q_x != "marginal":
            raise ValueError(f"inverse_h (the joint-entropy ablation) needs q_x = 'marginal', got {q_x!r}")
        if objective == "elbo":
            return Trace_ELBO_plus_H()
        return Trace_MIM_minus_H(symmetric=objective == "mim", beta=beta)
    if objective == "elbo":
        return Trace_ELBO()
    if q_x == "learned":
        if getattr(model, "marginal", None) is None:
            raise ValueError(
                "q_x = 'learned' needs a model with a learned marginal q(x): set [model] marginal_components > 0 "
                "in the spec, or use q_x = 'marginal'"
            )
        estimate: Any = model.marginal
    elif q_x in ("marginal", "data"):
        estimate = q_x
    else:
        raise ValueError(f"unknown q_x {q_x!r}; choose 'marginal', 'data' or 'learned'")
    if q_x == "data" and objective in ("mim", "mim_score"):
        raise ValueError(
            "q_x = 'data' only works with the 'amim' objective (decoder-side samples of 'mim' need q(x) at "
            "generated x); use q_x = 'marginal' or objective 'amim'"
        )
    if objective == "mim_score":
        return Trace_MIM(symmetric=True, q_x=estimate, beta=beta, decoder_gradient="score")
    return Trace_MIM(symmetric=objective == "mim", q_x=estimate, beta=beta)
