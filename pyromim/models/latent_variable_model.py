"""A one- or two-level latent-variable model as a Pyro model/guide pair.

One level::

    model:  z ~ p(z),                         x ~ p(x | decoder(z))
    guide:  z ~ N(mu(x), sigma(x))

Two levels (``z2 -> z -> x``, the hierarchical models of the MIM paper's
image experiments, after Tomczak & Welling 2018)::

    model:  z2 ~ p(z2),  z ~ N(mu(z2), sigma(z2)),  x ~ p(x | decoder(z))
    guide:  z2 ~ q(z2 | x),  z ~ q(z | x, z2)

Conventions relied on by the objectives, training engine and metrics:

* ``model(x)`` and ``guide(x)`` take the data batch first; the observed site
  is ``"x"``, the latent sites ``"z"`` and (two levels) ``"z2"``;
* one plate named ``"data"`` over dim -1, sized ``x.shape[-(event_dims + 1)]``,
  so ``x`` may carry extra leading (particle) dims on the decoder side of
  symmetric MIM;
* both are methods of a :class:`~pyro.nn.PyroModule`, so every parameter is
  registered when they run under ``SVI`` or ``Trace_MIM``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import nn

from pyromim.blocks.likelihoods import Likelihood
from pyromim.blocks.marginals import DecoderMixtureMarginal
from pyromim.blocks.priors import Prior
from pyromim.nn import GaussianNetwork
from pyromim.ops import private

if TYPE_CHECKING:
    from pyromim.specs import ModelSpec


class ParamStoreConflictError(RuntimeError):
    """Pyro's global parameter store holds other tensors under this model's parameter names."""


class LatentVariableModel(PyroModule):
    """Latent-variable model ``p(x, z)`` with amortised Gaussian guide ``q(z | x)``.

    :param likelihood: maps decoder output to ``p(x | z)``.
    :param prior: ``p(z)`` (one level) or ``p(z2)`` (two levels).
    :param encoder: ``encoder_input(x) -> (mu, sigma)`` of ``q(z | x)`` (one
        level) or ``q(z2 | x)`` (two levels).
    :param decoder: ``z -> likelihood parameters`` of shape ``likelihood.param_shape``.
    :param conditional_prior: two levels only: ``z2 -> (mu, sigma)`` of ``p(z | z2)``.
    :param conditional_encoder: two levels only:
        ``cat(encoder_input(x).flatten(), z2) -> (mu, sigma)`` of ``q(z | x, z2)``.
    :param marginal_components: if > 0, ``self.marginal`` is a learned
        ``DecoderMixtureMarginal`` ``q(x)`` with this many
        pseudo-latents, for ``Trace_MIM(q_x=model.marginal)``; otherwise ``None``.
    """

    def __init__(
        self,
        likelihood: Likelihood,
        prior: Prior,
        encoder: GaussianNetwork,
        decoder: nn.Module,
        conditional_prior: GaussianNetwork | None = None,
        conditional_encoder: GaussianNetwork | None = None,
        latent_dim: int | None = None,
        marginal_components: int = 0,
    ) -> None:
        super().__init__()
        if (conditional_prior is None) != (conditional_encoder is None):
            raise ValueError("a two-level model needs both conditional_prior and conditional_encoder")
        self.likelihood = likelihood
        self.prior = prior
        self.encoder = encoder
        self.decoder = decoder
        self.levels = 1 if conditional_prior is None else 2
        if conditional_prior is not None and conditional_encoder is not None:
            self.conditional_prior: GaussianNetwork = conditional_prior
            self.conditional_encoder: GaussianNetwork = conditional_encoder
            if latent_dim is None:
                raise ValueError("a two-level model needs latent_dim (the size of z)")
        self.latent_dim = int(latent_dim if latent_dim is not None else prior.latent_dim)
        self.marginal = (
            DecoderMixtureMarginal(self.decode, self.latent_dim, marginal_components)
            if marginal_components > 0
            else None
        )
        self.spec: ModelSpec | None = None  # set by pyromim.build_model; needed by save_model
        self._support_checked = False
        to_pyro_module_(self)

    # ----------------------------------------------------------------- shapes
    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.likelihood.data_shape

    @property
    def event_dims(self) -> int:
        return self.likelihood.event_dims

    def _batch_size(self, x: torch.Tensor) -> int:
        if x.dim() <= self.event_dims or x.shape[x.dim() - self.event_dims :] != self.data_shape:
            raise ValueError(
                f"expected data of shape (batch, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}"
            )
        return x.shape[-(self.event_dims + 1)]

    def _check_param_store(self) -> None:
        """Refuse to run when Pyro's global store would silently train other tensors."""
        if private.module_local_params():
            return
        store = pyro.get_param_store()
        prefix = self._pyro_name + "." if self._pyro_name else ""
        for name, param in self.named_parameters():
            full = prefix + name
            if full in store and store._params[full] is not param:
                raise ParamStoreConflictError(
                    f"Pyro's param store already holds a different tensor named '{full}' "
                    "(another model with the same parameter names ran earlier in this process). "
                    "Call pyro.clear_param_store() before training this model, or enable "
                    "pyro.settings.set(module_local_params=True)."
                )

    # ------------------------------------------------------------- networks
    def _encode_top(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(features)

    def _conditional_input(self, features: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``cat(flattened features, z2)`` broadcast over leading (particle) dims."""
        flat = features.flatten(features.dim() - len(self.likelihood.feature_shape))
        lead = torch.broadcast_shapes(flat.shape[:-1], z2.shape[:-1])
        return torch.cat([flat.expand(lead + flat.shape[-1:]), z2.expand(lead + z2.shape[-1:])], -1)

    # --------------------------------------------------------- model & guide
    def model(self, x: torch.Tensor) -> torch.Tensor:
        """``p(x, z)``: prior, (conditional prior), decoder, observed site ``"x"``."""
        self._check_param_store()
        if not self._support_checked:
            self.likelihood.check_support(x)
            self._support_checked = True
        with pyro.plate("data", self._batch_size(x), dim=-1):
            if self.levels == 2:
                z2 = pyro.sample("z2", self.prior())
                loc, scale = self.conditional_prior(z2)
                z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            else:
                z = pyro.sample("z", self.prior())
            return pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """``q(z | x)``: amortised diagonal Gaussian(s); returns ``z``."""
        self._check_param_store()
        features = self.likelihood.encoder_input(x)
        with pyro.plate("data", self._batch_size(x), dim=-1):
            loc, scale = self._encode_top(features)
            if self.levels == 2:
                z2 = pyro.sample("z2", dist.Normal(loc, scale).to_event(1))
                loc, scale = self.conditional_encoder(self._conditional_input(features, z2))
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # -------------------------------------------------------- user-facing API
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of ``q(z | x)``; with two levels ``z2`` is set to its posterior mean."""
        features = self.likelihood.encoder_input(x)
        loc, scale = self._encode_top(features)
        if self.levels == 2:
            loc, scale = self.conditional_encoder(self._conditional_input(features, loc))
        return loc, scale

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """The representation ``z`` of ``x``: the posterior mean, or a draw if ``sample``."""
        loc, scale = self.posterior(x)
        return loc + scale * torch.randn_like(loc) if sample else loc

    def decode(self, z: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` as a distribution with ``event_shape == data_shape``."""
        return self.likelihood(self.decoder(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Point reconstruction ``x_hat`` from the posterior mean of ``z``."""
        return self.likelihood.point_estimate(self.decoder(self.encode(x)))

    def sample_latent(self, n: int) -> torch.Tensor:
        """``n`` draws of ``z`` from the model (through ``z2`` with two levels)."""
        z = self.prior().rsample((n,))
        if self.levels == 2:
            loc, scale = self.conditional_prior(z)
            z = loc + scale * torch.randn_like(loc)
        return z

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws of ``x`` from the model, shape ``(n,) + data_shape``."""
        return self.decode(self.sample_latent(n)).sample()
