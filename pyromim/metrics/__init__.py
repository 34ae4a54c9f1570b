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
from pyromim.metrics.ais import ais_log_likelihood
from pyromim.metrics.arviz_export import to_inference_data
from pyromim.metrics.bleu import corpus_bleu
from pyromim.metrics.classification import knn_accuracy
from pyromim.metrics.code_reliance import CodeReliance, code_reliance
from pyromim.metrics.consistency import GenerationConsistency, generation_consistency
from pyromim.metrics.decoding import Decoding, greedy_reconstruction
from pyromim.metrics.evaluate import EVALUATE_KEYS, OPTIONAL_KEYS, SEQUENCE_KEYS, evaluate
from pyromim.metrics.ksg import ksg_mutual_information
from pyromim.metrics.likelihood import LogLikelihood, log_likelihood, nll_unreliable
from pyromim.metrics.marginal_entropy import MarginalEntropy, marginal_entropy
from pyromim.metrics.rate import Rate, rate
from pyromim.metrics.reconstruction import Reconstruction, reconstruction_error
from pyromim.metrics.token_likelihood import TokenLikelihood, token_likelihood

__all__ = [
    "EVALUATE_KEYS",
    "OPTIONAL_KEYS",
    "SEQUENCE_KEYS",
    "ActiveUnits",
    "AggregateMI",
    "CodeReliance",
    "Decoding",
    "GenerationConsistency",
    "LogLikelihood",
    "MarginalEntropy",
    "Rate",
    "Reconstruction",
    "TokenLikelihood",
    "active_units",
    "ais_log_likelihood",
    "code_reliance",
    "corpus_bleu",
    "evaluate",
    "generation_consistency",
    "greedy_reconstruction",
    "knn_accuracy",
    "ksg_mutual_information",
    "log_likelihood",
    "marginal_entropy",
    "mutual_information",
    "nll_unreliable",
    "rate",
    "reconstruction_error",
    "to_inference_data",
    "token_likelihood",
]
