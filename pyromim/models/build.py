"""``build_model``: a :class:`LatentVariableModel` from a spec."""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from pyromim.likelihoods import (
    CategoricalLikelihood,
    GaussianLikelihood,
    LIKELIHOODS,
    Likelihood,
)
from pyromim.models.latent_variable_model import LatentVariableModel
from pyromim.nn import MLP, ConvDecoder, ConvEncoder, GaussianHead, GaussianNetwork
from pyromim.priors import LearnedGaussianPrior, MixturePrior, Prior, StandardNormalPrior, VampPrior
from pyromim.specs import ModelSpec, NetworkSpec, resolve_spec


def make_likelihood(spec: ModelSpec) -> Likelihood:
    shape, m = tuple(spec.data.shape), spec.model
    if m.likelihood == "gaussian":
        return GaussianLikelihood(shape, m.likelihood_scale, m.likelihood_fixed_scale, m.min_logvar,
                                  standardize=spec.data.standardize)
    if m.likelihood == "categorical":
        return CategoricalLikelihood(shape, spec.data.vocab_size)
    return LIKELIHOODS[m.likelihood](shape)


def make_encoder(net: NetworkSpec, in_shape: tuple[int, ...], latent_dim: int, min_logvar: float) -> GaussianNetwork:
    """``x -> (mu, sigma)``: body (MLP or conv) of width ``hidden[-1]`` and a Gaussian head."""
    width = net.hidden[-1] if net.hidden else math.prod(in_shape)
    if net.network == "conv":
        body: nn.Module = ConvEncoder(in_shape, width, net.channels, net.activation)
    elif net.hidden:
        body = MLP(in_shape, (width,), net.hidden[:-1], net.activation, net.norm, activate_output=True)
    else:
        body = nn.Flatten(-len(in_shape))
    return GaussianNetwork(body, GaussianHead(width, latent_dim, min_logvar))


def make_decoder(net: NetworkSpec, latent_dim: int, param_shape: tuple[int, ...]) -> nn.Module:
    """``z -> likelihood parameters`` of shape ``param_shape = (n_params, *data_shape)``."""
    if net.network == "conv":
        n_params, c, h, w = param_shape
        return nn.Sequential(
            ConvDecoder(latent_dim, (n_params * c, h, w), net.channels, net.activation),
            nn.Unflatten(-3, (n_params, c)),
        )
    return MLP((latent_dim,), param_shape, net.hidden, net.activation, net.norm)


def make_prior(spec: ModelSpec, latent_dim: int, encoder: GaussianNetwork, input_shape: tuple[int, ...]) -> Prior:
    m = spec.model
    if m.prior == "normal":
        return StandardNormalPrior(latent_dim)
    if m.prior == "learned_normal":
        return LearnedGaussianPrior(latent_dim)
    if m.prior == "mixture":
        return MixturePrior(latent_dim, m.prior_components)
    init_mean = 0.5 if spec.data.kind in ("binary", "grey") else 0.0
    return VampPrior(latent_dim, m.prior_components, input_shape, encoder, init_mean=init_mean)


def build_model(spec: str | Path | ModelSpec) -> LatentVariableModel:
    """Build the model a spec describes.

    :param spec: a :class:`~pyromim.specs.ModelSpec`, a path to a ``.toml``
        spec file, or the name of a spec in the catalogue (``models/``), e.g.
        ``"toy4"``; see :func:`pyromim.specs.available_specs`.
    """
    spec = resolve_spec(spec)
    m = spec.model
    likelihood = make_likelihood(spec)
    features = likelihood.feature_shape
    top_dim = m.top_latent_dim if m.levels == 2 else m.latent_dim
    encoder = make_encoder(spec.encoder, features, top_dim, m.min_logvar)
    decoder = make_decoder(spec.decoder, m.latent_dim, likelihood.param_shape)
    prior = make_prior(spec, top_dim, encoder, features)
    extra = {}
    if m.levels == 2:
        hidden = NetworkSpec(network="mlp", hidden=m.conditional_hidden, activation=spec.encoder.activation)
        extra = dict(
            conditional_prior=make_encoder(hidden, (top_dim,), m.latent_dim, m.min_logvar),
            conditional_encoder=make_encoder(hidden, (math.prod(features) + top_dim,), m.latent_dim, m.min_logvar),
        )
    model = LatentVariableModel(
        likelihood, prior, encoder, decoder, latent_dim=m.latent_dim,
        marginal_components=m.marginal_components, **extra,
    )
    model.spec = spec
    return model
