"""The four representation metrics of the MIM paper's toy figures, for a trained catalogue model.

On the test part (``N`` points, labels = mixture components):

* ``mi_ksg``: KSG estimate of ``I(x; z)`` (k = 5, max-norm) on the first
  ``ksg_max_points`` pairs ``(x, z)``, ``z ~ q(z|x)``;
* ``h_q_x``: :func:`pyromim.metrics.marginal_entropy`, ``-mean log q(x)`` with
  the one-sample marginal estimate;
* ``recon_error``: ``mean ||x - x_hat||``, ``x_hat`` the decoder mean at the
  posterior mean (:func:`pyromim.metrics.reconstruction_error`);
* ``knn5_accuracy``: 5-NN accuracy of posterior means, fitted on the training part.

The reference code measured the last two on *draws* instead: ``x_hat ~ p(x|z)``
with ``z ~ q(z|x)``, and 5-NN on sampled ``z`` for both parts. Those are
reported too (``recon_error_sampled``, ``knn5_accuracy_sampled``), as they are
the numbers to set beside the published ones (a VAE's wide decoder makes the
sampled error much larger than the posterior-mean one).
"""

from __future__ import annotations

from pyromim.data import DataSplits
from pyromim.metrics import evaluate
from pyromim.models import LatentVariableModel

#: Keys of :func:`paper_metrics`'s result (all computed by :func:`pyromim.metrics.evaluate`).
PAPER_METRICS = (
    "mi_ksg",
    "h_q_x",
    "recon_error",
    "knn5_accuracy",
    "recon_error_sampled",
    "knn5_accuracy_sampled",
)


def paper_metrics(model: LatentVariableModel, splits: DataSplits, *, ksg_max_points: int = 10_000) -> dict[str, float]:
    """The metrics listed in the module docstring, on ``splits.test`` (KNN fitted on ``splits.train``)."""
    test, train = splits.test, splits.train
    if test is None or test.labels is None or train.labels is None:
        raise ValueError("paper_metrics needs a labelled test part and a labelled training part")
    model.eval()
    return evaluate(
        model.model,
        model.guide,
        test.x,
        test.labels,
        train.x,
        train.labels,
        keys=PAPER_METRICS,
        ksg_max_points=ksg_max_points,
    )
