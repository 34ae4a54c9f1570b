"""Priors ``p(z)`` over a ``D``-dimensional latent, as Pyro modules.

Each prior is a :class:`~pyro.nn.PyroModule` whose call returns a distribution
with ``event_shape == (D,)`` and empty batch shape, so it can be used inside
any Pyro program and broadcasts under plates and vectorised particles::

    prior = MixturePrior(latent_dim=2, n_components=5)
    with pyro.plate("data", n):
        z = pyro.sample("z", prior())

All samples are reparameterised (``rsample``), including those of the
mixtures, so the decoder side of symmetric MIM can pass gradients through
``z ~ p(z)`` into the prior's parameters.

:data:`PRIORS` is the registry of priors a spec can name (``[model] prior``):
both the spec's validation and :func:`pyromim.build_model` read it, so a new
prior is a :class:`Prior` subclass with a ``name`` (and, if its constructor
takes more than ``latent_dim``, a :meth:`Prior.from_spec`) plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn.functional import softplus

from pyromim.distributions import DiagonalNormalMixture

EncoderFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _inverse_softplus(y: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(y))))


class Prior(PyroModule):
    """Base class: ``forward()`` returns ``p(z)`` with ``event_shape == (latent_dim,)``.

    Subclasses set ``name`` (the spec's word for them, ``[model] prior``).
    """

    name: str = ""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = int(latent_dim)

    @classmethod
    def from_spec(cls, spec: Any, latent_dim: int, encoder: EncoderFn, input_shape: tuple[int, ...]) -> Prior:
        """The prior a :class:`~pyromim.specs.ModelSpec` asks for, over ``latent_dim`` dimensions.

        :param encoder: the model's Gaussian encoder (priors defined through it, such as the VampPrior).
        :param input_shape: shape of one encoder input.
        """
        return cls(latent_dim)

    def forward(self) -> dist.TorchDistribution:  # pragma: no cover - abstract
        raise NotImplementedError


class StandardNormalPrior(Prior):
    """``p(z) = N(0, I)``: the fixed anchor of the MIM paper's toy experiments."""

    name = "normal"

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(self.latent_dim))

    def forward(self) -> dist.TorchDistribution:
        return dist.Normal(self.loc, torch.ones_like(self.loc)).to_event(1)


class LearnedGaussianPrior(Prior):
    """``p(z) = N(mu, diag(sigma^2))`` with learned ``mu`` and ``sigma = softplus(rho)``."""

    name = "learned_normal"

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.loc = nn.Parameter(torch.zeros(self.latent_dim))
        self.raw_scale = nn.Parameter(torch.full((self.latent_dim,), _inverse_softplus(1.0)))

    def forward(self) -> dist.TorchDistribution:
        return dist.Normal(self.loc, softplus(self.raw_scale)).to_event(1)


class MixturePrior(Prior):
    """``p(z) = sum_k w_k N(z; mu_k, diag(sigma_k^2))`` with learned ``w``, ``mu``, ``sigma``.

    Means start as ``N(0, init_spread^2)`` draws, scales at ``init_scale``,
    weights uniform. Samples carry gradients to all three (implicit
    reparameterisation, see :class:`~pyromim.distributions.DiagonalNormalMixture`).
    """

    name = "mixture"

    @classmethod
    def from_spec(cls, spec: Any, latent_dim: int, encoder: EncoderFn, input_shape: tuple[int, ...]) -> Prior:
        return cls(latent_dim, spec.model.prior_components)

    def __init__(
        self,
        latent_dim: int,
        n_components: int = 10,
        init_spread: float = 1.0,
        init_scale: float = 0.5,
    ) -> None:
        super().__init__(latent_dim)
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.locs = nn.Parameter(init_spread * torch.randn(n_components, self.latent_dim))
        self.raw_scales = nn.Parameter(torch.full((n_components, self.latent_dim), _inverse_softplus(init_scale)))

    def forward(self) -> DiagonalNormalMixture:
        return DiagonalNormalMixture(self.locs, softplus(self.raw_scales), self.logits)


class VampPrior(Prior):
    """VampPrior (Tomczak & Welling 2018): a mixture over ``K`` learned pseudo-inputs.

    ``u_k`` are ``K`` learned pseudo-inputs in the encoder's input space and
    ``(mu(u), sigma(u))`` the model's own Gaussian encoder, given as
    ``encoder``: a callable mapping a batch of inputs to ``(loc, scale)``. The
    components sit at the encoder's means of the pseudo-inputs::

        p(z) = 1/K sum_k N(z; mu(u_k), diag(s_k^2))

    with component scales ``s_k`` chosen by ``component_scale``:

    * ``"learned"`` (default): ``s_k`` are parameters of the prior
      (``softplus``, starting at 1), fitted like a mixture prior's.
    * ``"encoder"``: ``s_k = sigma(u_k)``, exactly Tomczak & Welling's
      ``1/K sum_k q(z | u_k)``. Under MIM this prior collapses the code: MIM
      rewards a low-entropy encoder, so ``sigma`` reaches its floor and every
      component becomes a spike whose pull (gradients growing as
      ``1 / sigma^2``) outweighs the likelihood; on binarised digits both
      A-MIM and MIM ended with 0 of 8 active units, against 8 of 8 with
      learned scales. Fine for the ELBO, whose encoder keeps its entropy.

    The encoder is held by reference and is *not* registered as a submodule
    (the model that owns it registers it), so its parameters are saved and
    optimised once. Gradients reach the pseudo-inputs, the encoder and the
    learned scales through samples (the weights are fixed, so ancestral
    reparameterisation is unbiased).

    :param input_shape: shape of one encoder input (the pseudo-input shape).
    :param init_mean: pseudo-inputs start at ``init_mean + init_std * N(0, 1)``.
    :param component_scale: ``"learned"`` or ``"encoder"`` (see above).
    """

    COMPONENT_SCALES = ("learned", "encoder")
    name = "vampprior"

    @classmethod
    def from_spec(cls, spec: Any, latent_dim: int, encoder: EncoderFn, input_shape: tuple[int, ...]) -> Prior:
        init_mean = 0.5 if spec.data.kind in ("binary", "grey") else 0.0  # pseudo-inputs amid pixel values
        return cls(latent_dim, spec.model.prior_components, input_shape, encoder, init_mean=init_mean)

    def __init__(
        self,
        latent_dim: int,
        n_components: int,
        input_shape: tuple[int, ...],
        encoder: EncoderFn,
        init_mean: float = 0.0,
        init_std: float = 0.1,
        component_scale: str = "learned",
    ) -> None:
        super().__init__(latent_dim)
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if component_scale not in self.COMPONENT_SCALES:
            raise ValueError(
                f"VampPrior component_scale must be one of {self.COMPONENT_SCALES} ('learned': the "
                f"prior's own scales; 'encoder': the encoder's scales at the pseudo-inputs), "
                f"got {component_scale!r}"
            )
        self.component_scale = component_scale
        self.pseudo_inputs = nn.Parameter(init_mean + init_std * torch.randn(n_components, *input_shape))
        if component_scale == "learned":
            self.raw_scales = nn.Parameter(torch.full((n_components, latent_dim), _inverse_softplus(1.0)))
        self.register_buffer("logits", torch.zeros(n_components))
        object.__setattr__(self, "_encoder", encoder)  # a reference, not a submodule

    def forward(self) -> DiagonalNormalMixture:
        loc, scale = self._encoder(self.pseudo_inputs)
        if loc.shape != (self.logits.shape[0], self.latent_dim):
            raise ValueError(
                f"VampPrior: the encoder returned loc of shape {tuple(loc.shape)} for "
                f"{self.logits.shape[0]} pseudo-inputs; expected "
                f"({self.logits.shape[0]}, {self.latent_dim})"
            )
        if self.component_scale == "learned":
            scale = softplus(self.raw_scales)
        return DiagonalNormalMixture(loc, scale, self.logits)


#: The priors a spec can name, by name (the spec's validation and the model builder both read this).
PRIORS: dict[str, type[Prior]] = {
    cls.name: cls for cls in (StandardNormalPrior, LearnedGaussianPrior, MixturePrior, VampPrior)
}


__all__ = ["PRIORS", "LearnedGaussianPrior", "MixturePrior", "Prior", "StandardNormalPrior", "VampPrior"]
