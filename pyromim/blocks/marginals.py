"""Learned encoder marginals ``q(x)`` for symmetric MIM.

:class:`DecoderMixtureMarginal` is the reference code's "VampPrior for x": a
mixture of the model's own decoder distributions at ``K`` learned
pseudo-latents ``u_k``::

    log q(x) = logsumexp_k log p(x | z = u_k) - log K

It follows the callable protocol of ``Trace_MIM(q_x=...)``: called with the
observed site's value as keyword ``x`` it returns per-datum ``log q(x)``,
shaped like that site's ``log_prob`` (the data shape removed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn


class DecoderMixtureMarginal(PyroModule):
    """``q(x) = 1/K sum_k p(x | u_k)`` with learned pseudo-latents ``u_k``.

    :param decode: maps latents of shape ``(K, latent_dim)`` to a distribution
        with batch shape ``(K,)`` and ``event_shape`` the data shape, e.g.
        :meth:`pyromim.models.LatentVariableModel.decode`. Held by reference, not registered
        as a submodule (the model that owns the decoder registers it).
    :param latent_dim: size of the latent fed to ``decode``.
    :param n_components: ``K``.
    :param site: name of the observed site (keyword in the call).
    """

    def __init__(
        self,
        decode: Callable[[torch.Tensor], dist.TorchDistribution],
        latent_dim: int,
        n_components: int,
        site: str = "x",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.site = site
        self.pseudo_latents = nn.Parameter(init_std * torch.randn(int(n_components), int(latent_dim)))
        object.__setattr__(self, "_decode", decode)

    def forward(self, **observed: torch.Tensor) -> torch.Tensor:
        if self.site not in observed:
            raise TypeError(
                f"DecoderMixtureMarginal was built for the observed site '{self.site}' but was called "
                f"with {sorted(observed)}; pass site=... when building it"
            )
        x = observed[self.site]
        components = self._decode(self.pseudo_latents)  # batch (K,)
        event_dims = len(components.event_shape)
        x = x.unsqueeze(x.dim() - event_dims)  # (..., n, 1, *event)
        log_p = components.log_prob(x)  # (..., n, K)
        return log_p.logsumexp(-1) - math.log(self.pseudo_latents.shape[0])


__all__ = ["DecoderMixtureMarginal"]
