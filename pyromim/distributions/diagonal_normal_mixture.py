"""A mixture of diagonal Gaussians with reparameterised (pathwise) samples.

Density, with ``K`` components and weights ``w = softmax(logits)``::

    p(z) = sum_k w_k prod_d N(z_d; mu_kd, sigma_kd)

``log_prob`` is evaluated with ``logsumexp`` over components, so it stays finite
however far ``z`` lies in the tails.

Sampling draws a component and a Gaussian point, then attaches gradients:

* weights that do not require gradients (e.g. the uniform weights of a
  VampPrior): the usual ancestral reparameterisation
  ``z = mu_k + sigma_k * eps``, which is unbiased because the discrete draw
  does not depend on any parameter;
* learned weights: implicit reparameterisation (Figurnov et al. 2018) through
  the autoregressive distributional transform
  ``u_d = F_d(z_d | z_<d) = sum_k w_k(z_<d) Phi((z_d - mu_kd) / sigma_kd)``
  with ``w_k(z_<d)`` the posterior component weights given the first ``d``
  coordinates. Holding ``u`` fixed gives the forward substitution
  ``dz_d/dtheta = -(du_d/dtheta + sum_{j<d} du_d/dz_j dz_j/dtheta) / p(z_d | z_<d)``,
  which the code builds with surrogate tensors whose values equal ``z`` and
  whose gradients are exactly these derivatives.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _normal_log_density(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((z - loc) / scale) ** 2 - scale.log() - _LOG_SQRT_2PI


class DiagonalNormalMixture(TorchDistribution):
    """Mixture of ``K`` diagonal Gaussians over ``R^D``.

    :param locs: component means, shape ``batch_shape + (K, D)``.
    :param scales: component standard deviations, same shape as ``locs``.
    :param logits: unnormalised log weights, shape ``batch_shape + (K,)``.

    ``event_shape == (D,)``; ``rsample`` is pathwise with respect to all three
    parameters (see the module docstring).
    """

    arg_constraints = {
        "locs": constraints.real,
        "scales": constraints.positive,
        "logits": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        locs: torch.Tensor,
        scales: torch.Tensor,
        logits: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        if locs.dim() < 2:
            raise ValueError(f"locs must have shape (..., K, D), got {tuple(locs.shape)}")
        batch_shape = torch.broadcast_shapes(locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
        k, d = locs.shape[-2:]
        if logits.shape[-1] != k:
            raise ValueError(f"logits have {logits.shape[-1]} components but locs have {k}")
        self.locs = locs.expand(batch_shape + (k, d))
        self.scales = scales.expand(batch_shape + (k, d))
        self.logits = logits.expand(batch_shape + (k,))
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def num_components(self) -> int:
        return self.locs.shape[-2]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return DiagonalNormalMixture(
            self.locs.expand(batch_shape + self.locs.shape[-2:]),
            self.scales.expand(batch_shape + self.scales.shape[-2:]),
            self.logits.expand(batch_shape + self.logits.shape[-1:]),
            validate_args=False,
        )

    @property
    def mean(self) -> torch.Tensor:
        w = self.logits.softmax(-1).unsqueeze(-1)
        return (w * self.locs).sum(-2)

    @property
    def variance(self) -> torch.Tensor:
        w = self.logits.softmax(-1).unsqueeze(-1)
        second = (w * (self.locs**2 + self.scales**2)).sum(-2)
        return second - self.mean**2

    def component_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(value; mu_k, sigma_k)`` for each component (last dim K)."""
        lp = _normal_log_density(value.unsqueeze(-2), self.locs, self.scales).sum(-1)
        return lp + self.logits.log_softmax(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.component_log_prob(value).logsumexp(-1)

    def _draw(self, sample_shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Component index, its loc and scale (with gradients), and white noise."""
        shape = self._extended_shape(sample_shape)
        idx = torch.distributions.Categorical(logits=self.logits.detach()).sample(sample_shape)
        gather_idx = idx[..., None, None].expand(shape[:-1] + (1, shape[-1]))
        locs = self.locs.expand(shape[:-1] + self.locs.shape[-2:])
        scales = self.scales.expand(shape[:-1] + self.scales.shape[-2:])
        loc = locs.gather(-2, gather_idx).squeeze(-2)
        scale = scales.gather(-2, gather_idx).squeeze(-2)
        eps = torch.randn(shape, dtype=self.locs.dtype, device=self.locs.device)
        return loc, scale, eps

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            loc, scale, eps = self._draw(torch.Size(sample_shape))
            return loc + scale * eps

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        loc, scale, eps = self._draw(sample_shape)
        if not self.logits.requires_grad:
            return loc + scale * eps
        return self._implicit_rsample((loc + scale * eps).detach())

    def _implicit_rsample(self, z: torch.Tensor) -> torch.Tensor:
        """Surrogate of ``z`` carrying implicit-reparameterisation gradients."""
        log_w = self.logits.log_softmax(-1).expand(z.shape[:-1] + (self.num_components,))
        coords = []
        for d in range(z.shape[-1]):
            loc_d, scale_d = self.locs[..., d], self.scales[..., d]
            z_d = z[..., d].detach()
            std = (z_d.unsqueeze(-1) - loc_d) / scale_d
            cdf = torch.special.ndtr(std)
            u = (log_w.exp() * cdf).sum(-1)
            log_density = (log_w + _normal_log_density(z_d.unsqueeze(-1), loc_d, scale_d)).logsumexp(-1)
            density = log_density.exp().detach().clamp_min(torch.finfo(z.dtype).tiny)
            z_tilde = z_d - (u - u.detach()) / density
            coords.append(z_tilde)
            # Condition the component weights on the surrogate coordinate so that
            # later coordinates see dz_d/dtheta through w_k(z_<=d).
            log_w = (log_w + _normal_log_density(z_tilde.unsqueeze(-1), loc_d, scale_d)).log_softmax(-1)
        return torch.stack(coords, -1)
