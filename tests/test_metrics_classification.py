import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from pyromim.metrics import knn_accuracy


def test_perfectly_separated_clusters_are_classified_without_error():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    y = rng.integers(0, 3, size=300)
    z = centres[y] + rng.normal(size=(300, 2))
    assert knn_accuracy(z[:200], y[:200], z[200:], y[200:]) == 1.0
    assert knn_accuracy(torch.tensor(z), torch.tensor(y)) == 1.0


def test_uninformative_codes_score_at_chance():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(2000, 2)), rng.integers(0, 2, size=2000)
    # binomial sd of an accuracy over 1000 test points is 0.016; 0.06 is ~4 sd
    assert abs(knn_accuracy(z[:1000], y[:1000], z[1000:], y[1000:]) - 0.5) < 0.06


def test_leave_one_out_equals_refitting_without_each_point():
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(60, 3)), rng.integers(0, 3, size=60)
    hits = []
    for i in range(60):
        keep = np.arange(60) != i
        clf = KNeighborsClassifier(n_neighbors=5).fit(z[keep], y[keep])
        hits.append(clf.predict(z[i : i + 1])[0] == y[i])
    assert knn_accuracy(z, y, k=5) == pytest.approx(np.mean(hits), abs=1e-12)


def test_inconsistent_inputs_are_rejected():
    with pytest.raises(ValueError, match="z_train has 4 rows but y_train 3"):
        knn_accuracy(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="both z_test and y_test"):
        knn_accuracy(np.zeros((9, 2)), np.zeros(9), z_test=np.zeros((2, 2)))
