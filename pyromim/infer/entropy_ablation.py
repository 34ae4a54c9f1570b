"""The MIM paper's joint-entropy ("inverse H") ablation losses.

The MIM loss is a cross-entropy that splits into a divergence between the two
joints plus the joint entropy of the sample mixture (the MIM paper, arXiv:1910.03175),

    L_MIM = 1/2 [CE(M_S, q(x,z)) + CE(M_S, p(x,z))] >= JSD(p(x,z), q(x,z)) + H(M_S),
    M(x, z) = 1/2 [p(x, z) + q(x, z)],   q(x, z) = q(z|x) q(x).

The reference code's ``--inv-H-loss`` flag moves the entropy regulariser
``R_H(x, z) = -log(joint density)`` from one objective to the other, to show
that it, not the divergence, is what gives MIM its high mutual information:

* **MIM - H** (:class:`Trace_MIM_minus_H`): every sample's cost is
  ``l(x, z) - R_H`` with ``R_H = -log M(x, z)``, the one-sample estimate of
  ``H(M_S)``::

      l(x, z) + log( 1/2 [p(x, z) + q(z|x) q(x)] ),

  on encoder-side and decoder-side samples alike, ``q(x)`` the one-sample
  marginal estimate, ``beta`` weighting ``l`` only. On the encoder side the
  marginal estimate shares ``z`` (``q(z|x) q(x) = p(x, z)`` exactly), so the
  cost is ``(1 - beta)/2 log p(x, z)``, zero once warmed up: only decoder-side
  samples train the model.
* **VAE + H** (:class:`Trace_ELBO_plus_H`): the negative ELBO plus the
  encoder's joint entropy ``R_H = -[log q(z|x) + log q(x)]`` on encoder-side
  samples; with the one-sample marginal at the same ``z`` this is
  ``-log p(x, z)``, so the per-sample cost is::

      -[log p(x, z) - log q(z|x)] - log p(x, z) = -2 log p(x, z) + log q(z|x).

  The reference code also warms the KL term of its VAEs up with ``beta``;
  pyromim's VAE (``Trace_ELBO``) has no warm-up, so neither has this loss:
  ``beta`` is accepted (the training engine sets it) and ignored.

Both need ``q_x="marginal"`` (the reference runs used it). The mixture density
is taken per datum, so every site's ``log_prob`` must have the data's batch
shape (one plate over data, sites with ``to_event`` dimensions), without
subsampling scale.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pyromim.infer.mim_traces import MIMTraces
from pyromim.infer.sides import Side
from pyromim.infer.sites import sample_sites
from pyromim.infer.trace_mim import Trace_MIM

__all__ = ["Trace_ELBO_plus_H", "Trace_MIM_minus_H"]


def per_datum_log_prob(trace: Any, role: str) -> torch.Tensor:
    """Sum of the sample sites' ``log_prob`` per datum; every site must share the batch shape."""
    total, shape, first = None, None, None
    for name, site in sample_sites(trace, include_auxiliary=True).items():
        log_prob = site["log_prob"]
        scale = site.get("scale", 1.0)
        if not (isinstance(scale, (int, float)) and scale == 1.0):
            raise ValueError(
                f"{role} site '{name}' carries a subsampling scale; the joint-entropy ablation needs "
                "per-datum densities: train on full mini-batches without plate subsampling"
            )
        if shape is not None and log_prob.shape != shape:
            raise ValueError(
                f"{role} site '{name}' has log_prob shape {tuple(log_prob.shape)} but site '{first}' has "
                f"{tuple(shape)}; the joint-entropy ablation needs one value per datum at every site "
                "(declare per-datum dimensions with .to_event)"
            )
        shape, first = log_prob.shape, first or name
        total = log_prob if total is None else total + log_prob
    if total is None:
        raise ValueError(f"the {role} trace has no sample sites")
    return total


def _data_stack(trace: Any) -> Any:
    return next(site["cond_indep_stack"] for site in sample_sites(trace, include_auxiliary=True).values())


def _require_marginal(loss: Trace_MIM, name: str) -> None:
    if not (isinstance(loss.q_x, str) and loss.q_x == "marginal"):
        raise ValueError(
            f"{name} needs q_x='marginal' (the reference code's choice, whose joint-entropy terms it "
            f"reproduces); got q_x={loss.q_x!r}"
        )


class Trace_MIM_minus_H(Trace_MIM):
    """MIM without its joint-entropy term ("MIM - H"): per sample ``l(x, z) + log M(x, z)``.

    Same arguments as :class:`~pyromim.Trace_MIM` (``q_x`` must be
    ``"marginal"``); see the module docstring for the maths.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _require_marginal(self, "Trace_MIM_minus_H")

    def _sides(self, traces: MIMTraces, beta) -> list[Side]:
        half = 0.5 if self.symmetric else 1.0
        enc = Side("encoder", self.score_baseline == "leave_one_out")
        # q(z|x) q(x) = p(x, z) at the shared z, so M = p(x, z) and
        # l + log M = -1/2 (1 + beta) log p(x, z) + log p(x, z)
        enc.add_evaluated("model", traces.enc_model, half * 0.5 * (1.0 - beta))
        enc.add_sampled("guide", traces.enc_guide, 0.0)
        if not self.symmetric:
            return [enc]
        _, dec = super()._sides(traces, beta)
        log_p = per_datum_log_prob(traces.dec_model, "decoder-side model")
        log_q = (
            per_datum_log_prob(traces.dec_guide, "decoder-side guide")
            + per_datum_log_prob(traces.re_model, "re-encoded model")
            - per_datum_log_prob(traces.re_guide, "re-encoding guide")
        )
        log_mixture = torch.logaddexp(log_p, log_q) - math.log(2.0)
        dec.add("log M(x, z)", log_mixture, half, _data_stack(traces.dec_model))
        return [enc, dec]


class Trace_ELBO_plus_H(Trace_MIM):
    """The VAE loss with the encoder's joint entropy added ("VAE + H"): ``-2 log p(x, z) + log q(z|x)``.

    Encoder-side samples only; ``beta`` is ignored (see the module docstring).

    :param kwargs: as :class:`~pyromim.Trace_MIM` (``num_particles``,
        ``vectorize_particles``, ...); ``symmetric`` must be ``False`` and
        ``q_x`` ``"marginal"``.
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.setdefault("symmetric", False):
            raise ValueError("Trace_ELBO_plus_H is a VAE loss on encoder-side samples: symmetric must be False")
        super().__init__(**kwargs)
        _require_marginal(self, "Trace_ELBO_plus_H")

    def _sides(self, traces: MIMTraces, beta) -> list[Side]:
        enc = Side("encoder", self.score_baseline == "leave_one_out")
        enc.add_evaluated("model", traces.enc_model, -2.0)
        enc.add_sampled("guide", traces.enc_guide, 1.0)
        return [enc]
