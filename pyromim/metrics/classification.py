"""k-nearest-neighbour classification accuracy of encodings (scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier


def _numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a.reshape(len(a), -1) if a.ndim != 1 else a


def knn_accuracy(
    z_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    z_test: np.ndarray | torch.Tensor | None = None,
    y_test: np.ndarray | torch.Tensor | None = None,
    k: int = 5,
) -> float:
    """Accuracy of a ``k``-NN classifier (Euclidean, majority vote) fitted on ``z_train``.

    Without a test set the accuracy is leave-one-out on the training set: each
    point is classified by its ``k`` nearest *other* points.  Ties in the vote
    go to the smallest label, as in scikit-learn.
    """
    z_train = _numpy(z_train).reshape(len(z_train), -1)
    y_train = _numpy(y_train)
    if len(z_train) != len(y_train):
        raise ValueError(f"z_train has {len(z_train)} rows but y_train {len(y_train)} labels")
    classifier = KNeighborsClassifier(n_neighbors=k).fit(z_train, y_train)
    if (z_test is None) != (y_test is None):
        raise ValueError("give both z_test and y_test, or neither (leave-one-out)")
    if z_test is not None and y_test is not None:
        z_test = _numpy(z_test).reshape(len(z_test), -1)
        return float(classifier.score(z_test, _numpy(y_test)))
    if len(z_train) <= k:
        raise ValueError(f"leave-one-out {k}-NN needs more than {k} points, got {len(z_train)}")
    neighbours = classifier.kneighbors(return_distance=False)  # excludes each point itself
    classes, codes = np.unique(y_train, return_inverse=True)
    votes = np.zeros((len(y_train), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.arange(len(y_train))[:, None], codes[neighbours]), 1)
    return float(np.mean(votes.argmax(1) == codes))
