"""Batched KSG (all points queried at once, every core) against the per-point algorithm.

The per-point version is the textbook loop, already tree-bound: the same
KD-trees, one point queried at a time.  Both give the same value; the script
prints both timings and their ratio from one run.

    PYTHONPATH=. python benchmarks/bench_ksg.py [N]
"""

import os
import sys
import time

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from pyromim.metrics import ksg_mutual_information


def per_point_ksg(x: np.ndarray, z: np.ndarray, k: int = 5) -> float:
    joint = np.hstack([x, z])
    trees = cKDTree(joint), cKDTree(x), cKDTree(z)
    total = 0.0
    for i in range(len(x)):
        eps = trees[0].query(joint[i], k=[k + 1], p=np.inf)[0][0]
        r = np.nextafter(eps, 0.0)
        n_x = trees[1].query_ball_point(x[i], r, p=np.inf, return_length=True) - 1
        n_z = trees[2].query_ball_point(z[i], r, p=np.inf, return_length=True) - 1
        total += digamma(n_x + 1) + digamma(n_z + 1)
    return digamma(k) + digamma(len(x)) - total / len(x)


def best_of(fn, repeats: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2))
    z = 0.8 * x + 0.6 * rng.standard_normal((n, 2))
    t_loop, v_loop = best_of(lambda: per_point_ksg(x, z), 3)
    t_batch, v_batch = best_of(lambda: ksg_mutual_information(x, z), 5)
    print(f"KSG N={n} d_x=d_z=2 k=5, cores available: {os.cpu_count()}")
    print(f"  per-point loop : {t_loop * 1e3:8.1f} ms   MI = {v_loop:.12f}")
    print(f"  batched        : {t_batch * 1e3:8.1f} ms   MI = {v_batch:.12f}")
    print(f"  |difference|   : {abs(v_loop - v_batch):.1e}")
    print(f"  speed-up       : {t_loop / t_batch:.1f}x")


if __name__ == "__main__":
    main()
