"""Monte Carlo checks: compare repeated stochastic estimates with exact values.

A check passes when every component of the mean of ``R`` independent estimates
lies within ``z_max`` standard errors of the exact value. With ``z_max = 4.5``
a correct estimator fails a component with probability below 1e-5, while a
missing or wrong term shifts the mean by many standard errors.
"""

import torch


def repeated(estimate, repeats):
    """Stack ``repeats`` independent calls of ``estimate() -> 1-D tensor``."""
    return torch.stack([estimate().detach() for _ in range(repeats)])


def z_scores(samples, exact):
    mean = samples.mean(0)
    se = samples.std(0, unbiased=True) / samples.shape[0] ** 0.5
    return (mean - exact) / se.clamp_min(1e-12)


def assert_unbiased(samples, exact, z_max=4.5, atol=1e-6, rtol=1e-5, names=None):
    exact = torch.as_tensor(exact, dtype=samples.dtype)
    mean = samples.mean(0)
    se = samples.std(0, unbiased=True) / samples.shape[0] ** 0.5
    # rtol only absorbs float32 rounding where an entry has no variance
    ok = (mean - exact).abs() <= z_max * se + atol + rtol * exact.abs()
    if not bool(ok.all()):
        names = names or [str(i) for i in range(len(exact))]
        rows = [
            f"{n}: estimate {m:.5g} +- {s:.2g} (SE), exact {e:.5g}, z={(m - e) / max(s, 1e-12):.1f}"
            for n, m, s, e in zip(names, mean.tolist(), se.tolist(), exact.tolist())
        ]
        raise AssertionError("Monte Carlo estimate disagrees with exact value:\n" + "\n".join(rows))
