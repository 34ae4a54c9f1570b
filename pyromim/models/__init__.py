"""Latent-variable models assembled from priors, likelihoods and networks."""

from pyromim.models.build import build_model
from pyromim.models.latent_variable_model import LatentVariableModel, ParamStoreConflictError
from pyromim.models.model_file import CheckpointError, load_model, save_model

__all__ = [
    "CheckpointError",
    "LatentVariableModel",
    "ParamStoreConflictError",
    "build_model",
    "load_model",
    "save_model",
]
