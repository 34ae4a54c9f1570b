"""Representation metrics for any Pyro model/guide pair.

``data`` is a tensor of data points for a pair written ``model(x)`` /
``guide(x)``, or, for any other signature (labels, covariates, masks,
lengths), a tuple or dict of the model's arguments whose tensors have the data
points along their leading dimension (see :mod:`pyromim.data.batches`).

Every metric runs traces of the pair, finds the plate over the data's leading
dimension, and reduces each site's ``log_prob`` to one value per datum;
importance samples are vectorised with an outer plate and all work is chunked
to a memory budget.
"""

from pyromim.metrics.active_units import ActiveUnits, active_units
from pyromim.metrics.aggregate_mi import AggregateMI, mutual_information
from pyromim.metrics.arviz_export import to_inference_data
from pyromim.metrics.classification import knn_accuracy
from pyromim.metrics.consistency import GenerationConsistency, generation_consistency
from pyromim.metrics.evaluate import EVALUATE_KEYS, OPTIONAL_KEYS, evaluate
from pyromim.metrics.ksg import ksg_mutual_information
from pyromim.metrics.likelihood import LogLikelihood, log_likelihood, nll_unreliable
from pyromim.metrics.marginal_entropy import MarginalEntropy, marginal_entropy
from pyromim.metrics.reconstruction import Reconstruction, reconstruction_error

__all__ = [
    "EVALUATE_KEYS",
    "OPTIONAL_KEYS",
    "ActiveUnits",
    "AggregateMI",
    "GenerationConsistency",
    "LogLikelihood",
    "MarginalEntropy",
    "Reconstruction",
    "active_units",
    "evaluate",
    "generation_consistency",
    "knn_accuracy",
    "ksg_mutual_information",
    "log_likelihood",
    "marginal_entropy",
    "mutual_information",
    "nll_unreliable",
    "reconstruction_error",
    "to_inference_data",
]
