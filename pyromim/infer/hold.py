"""Holding the guide fixed on the decoder side (``Trace_MIM(guide_gradient="encoder_side")``).

On the decoder side the guide is evaluated at the model's draws and draws the
re-encoding ``z' ~ q(z|x)``. :class:`HoldGuide` runs it with every sample site's
distribution *held*: a copy whose parameter tensors are detached. The decoder
side's guide terms then reach none of the guide's parameters, and the guide
learns from the encoder side alone; gradients still flow through the values a
held density is evaluated at (a learned prior's draw), but not through the
guide's parameters' inputs: for a continuous decoder, whose generated data
carry gradients, the path from the decoder through the data the guide reads is
cut as well (discrete generated data are held fixed anyway under the default
``decoder_gradient="detach"``).

A distribution is held by copying it and detaching the tensors it holds, in
its own attributes and in those of the distributions and transforms it is made
of. A distribution whose density depends on parameters it does not hold as
tensors (a normalising flow's networks) cannot be held; :class:`HoldGuide`
checks each site and refuses it with a :class:`ValueError` naming the site.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import Distribution
from torch.distributions.transforms import Transform

__all__ = ["HoldGuide", "held_distribution"]


def _held(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.detach()
    if isinstance(value, torch.nn.Module):
        return value  # its parameters are not held here (HoldGuide refuses the site)
    if isinstance(value, (Distribution, Transform)):
        held = copy.copy(value)
        held.__dict__.update({key: _held(item) for key, item in vars(value).items()})
        return held
    if isinstance(value, (list, tuple)):
        return type(value)(_held(item) for item in value)
    return value


def held_distribution(fn: Distribution) -> Distribution:
    """A copy of ``fn`` whose parameter tensors are detached (its density, with no gradient to them)."""
    return _held(fn)


class HoldGuide(Messenger):
    """Run a guide with its sample sites' distributions held (see the module docstring)."""

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"] and isinstance(msg["fn"], Distribution):
            msg["fn"] = held_distribution(msg["fn"])

    def _pyro_post_sample(self, msg: dict) -> None:
        # the held density at the site's value (drawn or replayed) must not reach a parameter
        if msg["is_observed"] or not isinstance(msg["fn"], Distribution) or not torch.is_grad_enabled():
            return
        if msg["fn"].log_prob(msg["value"].detach()).requires_grad:
            raise ValueError(
                f"Trace_MIM(guide_gradient='encoder_side'): the guide's site '{msg['name']}' "
                f"({type(msg['fn']).__name__}) has a density that depends on parameters it does not hold "
                f"as tensors (e.g. a flow's networks), so the decoder side cannot hold it fixed; use "
                f"guide_gradient='both' (the default) with this guide."
            )
