"""Per-datum Gaussian proposals refitted to each datum's posterior, for importance-sampled likelihoods.

An encoder trained with MIM or A-MIM is sharper than the model's posterior (MIM
rewards a low-entropy ``q(z|x)``), so with the guide as the proposal the
importance weights ``p(x, z) / q(z|x)`` are heavy-tailed (PSIS ``k > 0.7``) and
the likelihood estimate cannot be trusted. :func:`refit_proposal` returns, for
one block of data, the guide with each latent site's distribution replaced by
a diagonal Gaussian per datum (in the site's unconstrained space, mapped to its
support), started at the guide's own draws (their mean and spread) and fitted
by maximising each datum's ELBO with Adam. The guide's plates and sites are
kept, so the proposal runs wherever the guide runs (vectorised, replayed on
prior draws for a defensive mixture). The estimate stays unbiased for ``p(x)``
whatever the fit (any proposal whose support covers the posterior is): the
refit only lowers the weights' variance. ELBO-fitted Gaussians are narrower than
the posterior along its correlated directions; a defensive share of prior
draws (``log_likelihood(defensive=...)``) bounds what remains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.distributions.transforms import biject_to
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from torch.nn.functional import softplus

from pyromim.data.batches import Batch
from pyromim.metrics.per_datum import importance_block
from pyromim.metrics.trace_layout import TraceLayout

__all__ = ["refit_proposal"]

#: default factor on the fitted scales of a refitted proposal (see :func:`refit_proposal`)
INFLATE = 1.2
#: smallest scale of a refitted proposal (unconstrained space), so a fit cannot collapse it
MIN_SCALE = 1e-4


class _Gaussians(Messenger):
    """Replaces the named latent sites' distributions by per-datum Gaussians (unconstrained
    space, mapped onto each site's support), keeping the sites' plates and event shapes."""

    def __init__(self, locs: dict[str, torch.Tensor], raw_scales: dict[str, torch.Tensor]):
        super().__init__()
        self.locs, self.raw_scales = locs, raw_scales
        #: factor on every scale (1 while fitting)
        self.inflate = 1.0

    def distribution(self, name: str, fn: Any) -> dist.TorchDistribution:
        event_dim = len(fn.event_shape)
        scale = (softplus(self.raw_scales[name]) + MIN_SCALE) * self.inflate
        base = dist.Normal(self.locs[name], scale).to_event(event_dim)
        fitted = dist.TransformedDistribution(base, biject_to(fn.support))
        return fitted.expand(torch.broadcast_shapes(fitted.batch_shape, fn.batch_shape))

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.locs and not msg["is_observed"]:
            msg["fn"] = self.distribution(msg["name"], msg["fn"])


def _start(model: Callable, guide: Callable, x: Batch, layout: TraceLayout, draws: int) -> tuple[dict, dict]:
    """Mean and spread of the guide's draws per latent site, in its unconstrained space:
    the fit's starting point, shaped like one (un-vectorised) draw."""
    with torch.no_grad(), poutine.block():
        guide_sites, _ = importance_block(model, guide, x, draws, layout)
    locs, raw_scales = {}, {}
    for name in layout.latent_sites:
        site = guide_sites[name]
        if site["fn"].support.is_discrete:
            raise ValueError(f"refit_steps: site '{name}' is discrete; refit needs continuous latent sites.")
        transform = biject_to(site["fn"].support)
        unconstrained = transform.inv(site["value"])
        if unconstrained.shape != site["value"].shape:
            raise ValueError(
                f"refit_steps: site '{name}' has a support ({site['fn'].support}) whose unconstrained space "
                "has another shape; refit needs latent sites on the real line or a same-shape support "
                "(positive, interval). Use refit_steps=0 for this model."
            )
        spread = unconstrained.std(0).clamp_min(1e-3)
        locs[name] = unconstrained.mean(0).clone().requires_grad_(True)
        raw_scales[name] = torch.log(torch.expm1(spread)).clone().requires_grad_(True)
    return locs, raw_scales


def refit_proposal(
    model: Callable,
    guide: Callable,
    x: Batch,
    layout: TraceLayout,
    steps: int,
    *,
    lr: float = 0.05,
    num_particles: int = 8,
    inflate: float | None = None,
) -> Callable:
    """A proposal for ``x``'s importance weights: per datum, a Gaussian fitted to ``p(z | x)``.

    :param steps: Adam steps on the sum over ``x`` of each datum's ELBO (each datum has
        its own parameters, and Adam scales each parameter's step on its own, so each
        datum's fit is its own).
    :param num_particles: ELBO particles per step (vectorised).
    :param inflate: factor on the fitted scales of the proposal returned (default
        :data:`INFLATE`): an ELBO fit is narrower than the posterior, and a wider proposal
        keeps the weights' tail light. Of 1.0, 1.2, 1.5 and 2.0, 1.2 gave the lowest
        standard errors on the README main job's three objectives (seed 1, 100 steps, measured
        once), with at most 0.4 % of the items' k-hat above 0.7.
    :returns: ``proposal(x)``: the guide with its latent sites drawn from the fitted Gaussians.
    """
    if steps < 1:
        raise ValueError(f"refit steps must be >= 1, got {steps}")
    locs, raw_scales = _start(model, guide, x, layout, draws=16)
    swap = _Gaussians(locs, raw_scales)
    proposal = swap(guide)
    params = list(locs.values()) + list(raw_scales.values())
    optimizer = torch.optim.Adam(params, lr=lr)
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=layout.max_plate_nesting)
    with poutine.block(), torch.enable_grad():
        for _ in range(steps):
            loss = elbo.differentiable_loss(model, proposal, x)
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    for p in params:
        p.requires_grad_(False)
    swap.inflate = INFLATE if inflate is None else inflate
    return proposal
