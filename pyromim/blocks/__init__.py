"""Densities that turn networks into the parts of a latent-variable model.

* :mod:`pyromim.blocks.priors`: priors ``p(z)`` (:data:`~pyromim.blocks.priors.PRIORS`);
* :mod:`pyromim.blocks.likelihoods`: likelihoods ``p(x|z)``
  (:data:`~pyromim.blocks.likelihoods.LIKELIHOODS`);
* :mod:`pyromim.blocks.autoregressive`: the autoregressive likelihoods (strong decoders);
* :mod:`pyromim.blocks.marginals`: learned encoder marginals ``q(x)`` for
  ``Trace_MIM(q_x=...)``.

A spec's ``[model]`` table names its prior and likelihood from these registries.
"""

from pyromim.blocks.autoregressive import AutoregressiveLikelihood, GRULikelihood, MADELikelihood, PixelCNNLikelihood
from pyromim.blocks.likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    CategoricalLikelihood,
    DataSupportError,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    Likelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
)
from pyromim.blocks.marginals import DecoderMixtureMarginal
from pyromim.blocks.priors import PRIORS, LearnedGaussianPrior, MixturePrior, Prior, StandardNormalPrior, VampPrior

__all__ = [
    "AutoregressiveLikelihood",
    "GRULikelihood",
    "MADELikelihood",
    "PixelCNNLikelihood",
    "LIKELIHOODS",
    "PRIORS",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "DataSupportError",
    "DecoderMixtureMarginal",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "LearnedGaussianPrior",
    "Likelihood",
    "MixturePrior",
    "NegativeBinomialLikelihood",
    "PoissonLikelihood",
    "Prior",
    "StandardNormalPrior",
    "VampPrior",
]
