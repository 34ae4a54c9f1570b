"""``build_model``: a :class:`LatentVariableModel` from a spec."""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from pyromim.blocks.likelihoods import LIKELIHOODS, Likelihood
from pyromim.blocks.priors import PRIORS, Prior
from pyromim.models.latent_variable_model import LatentVariableModel
from pyromim.models.memory import check_memory
from pyromim.nn import NETWORKS, GaussianHead, GaussianNetwork
from pyromim.nn.networks import encoder_width
from pyromim.specs import ModelSpec, NetworkSpec, resolve_spec


def make_likelihood(spec: ModelSpec) -> Likelihood:
    """The spec's ``[model] likelihood`` from :data:`pyromim.blocks.likelihoods.LIKELIHOODS`."""
    return LIKELIHOODS[spec.model.likelihood].from_spec(spec)


def make_encoder(net: NetworkSpec, in_shape: tuple[int, ...], latent_dim: int, min_scale: float) -> GaussianNetwork:
    """``x -> (mu, sigma)``: body (from :data:`pyromim.nn.NETWORKS`) of width ``hidden[-1]`` and a Gaussian head."""
    width = encoder_width(net, in_shape)
    body = NETWORKS[net.network].encoder_body(net, in_shape, width)
    return GaussianNetwork(body, GaussianHead(width, latent_dim, min_scale))


def make_decoder(net: NetworkSpec, latent_dim: int, param_shape: tuple[int, ...]) -> nn.Module:
    """``z -> likelihood parameters`` of shape ``param_shape = (n_params, *data_shape)``."""
    return NETWORKS[net.network].decoder(net, latent_dim, param_shape)


def make_prior(spec: ModelSpec, latent_dim: int, encoder: GaussianNetwork, input_shape: tuple[int, ...]) -> Prior:
    """The spec's ``[model] prior`` from :data:`pyromim.blocks.priors.PRIORS`."""
    return PRIORS[spec.model.prior].from_spec(spec, latent_dim, encoder, input_shape)


def build_model(spec: str | Path | ModelSpec) -> LatentVariableModel:
    """Build the model a spec describes.

    :param spec: a :class:`~pyromim.specs.ModelSpec`, a path to a ``.toml``
        spec file, or the name of a spec in the catalogue (``models/``), e.g.
        ``"toy4"``; see :func:`pyromim.specs.available_specs`.
    :raises SpecError: the spec's weights alone need more memory than the
        machine has (an estimate from the spec's layer sizes).
    """
    spec = resolve_spec(spec)
    check_memory(spec)
    m = spec.model
    likelihood = make_likelihood(spec)
    features = likelihood.feature_shape
    top_dim = m.top_latent_dim if m.levels == 2 and m.top_latent_dim is not None else m.latent_dim
    encoder = make_encoder(spec.encoder, features, top_dim, m.min_scale)
    # an autoregressive likelihood's own network reads z: the decoder hands it over unchanged
    decoder = (
        nn.Identity() if likelihood.owns_decoder else make_decoder(spec.decoder, m.latent_dim, likelihood.param_shape)
    )
    prior = make_prior(spec, top_dim, encoder, features)
    extra: dict[str, GaussianNetwork] = {}
    if m.levels == 2:
        hidden = NetworkSpec(network="mlp", hidden=m.conditional_hidden, activation=spec.encoder.activation)
        extra = dict(
            conditional_prior=make_encoder(hidden, (top_dim,), m.latent_dim, m.min_scale),
            conditional_encoder=make_encoder(hidden, (math.prod(features) + top_dim,), m.latent_dim, m.min_scale),
        )
    model = LatentVariableModel(
        likelihood,
        prior,
        encoder,
        decoder,
        latent_dim=m.latent_dim,
        marginal_components=m.marginal_components,
        **extra,
    )
    model.spec = spec
    return model
