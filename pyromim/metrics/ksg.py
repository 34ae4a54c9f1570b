"""Kraskov-Stoegbauer-Grassberger mutual-information estimator (algorithm 1).

For ``N`` pairs ``(x_i, z_i)`` and the max-norm, let ``eps_i`` be the distance
from ``(x_i, z_i)`` to its ``k``-th nearest neighbour in the joint space
(``||(dx, dz)|| = max(||dx||_inf, ||dz||_inf)``), and ``n_x(i)``, ``n_z(i)``
the numbers of other points strictly closer than ``eps_i`` in each marginal
space.  Then (Kraskov et al. 2004, eq. 8)

    I(X; Z) ~= psi(k) + psi(N) - < psi(n_x + 1) + psi(n_z + 1) >.

All points are queried at once: the joint ``k``-NN distances with SciPy's
KD-tree on every core (``workers=-1``), the marginal counts with
scikit-learn's Chebyshev KD-tree (``count_only``), which counts max-norm balls
faster than SciPy's ``query_ball_point(p=inf)`` (several times, measured
when it replaced it; ``python benchmarks/bench_ksg.py`` times the batched
estimator as a whole against a per-point loop).  The counts
equal the per-point definition exactly, because the strict ``<`` is taken as
``<= nextafter(eps, 0)`` on the same float64 distances.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma
from sklearn.neighbors import KDTree


def _as_matrix(a: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError(f"{name} must have a leading dimension of samples, got a scalar")
    return a.reshape(len(a), -1)


def _strict_counts(points: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Number of *other* points with max-norm distance ``< radius`` from each point."""
    inside = np.maximum(np.nextafter(radius, 0.0), 0.0)
    counts = KDTree(points, metric="chebyshev").query_radius(points, inside, count_only=True)
    # radius 0 (k duplicates) has no point strictly inside, the point itself included
    return np.where(radius > 0, counts - 1, 0)


def ksg_mutual_information(x: np.ndarray | torch.Tensor, z: np.ndarray | torch.Tensor, k: int = 5) -> float:
    """KSG (algorithm 1, max-norm) estimate of ``I(X; Z)`` in nats.

    :param x: ``(N, ...)`` samples of ``X`` (trailing dims are flattened).
    :param z: ``(N, ...)`` paired samples of ``Z``.
    :param k: neighbour order; the paper and the reference code use 5.
    """
    x = _as_matrix(x, "x")
    z = _as_matrix(z, "z")
    n = len(x)
    if len(z) != n:
        raise ValueError(f"x and z must pair up: x has {n} samples, z has {len(z)}")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N-1] = [1, {n - 1}], got {k}")
    joint = np.hstack([x, z])
    # k+1 nearest include the point itself (distance 0)
    eps = cKDTree(joint).query(joint, k=[k + 1], p=np.inf, workers=-1)[0][:, 0]
    n_x = _strict_counts(x, eps)
    n_z = _strict_counts(z, eps)
    return float(digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_z + 1)))
