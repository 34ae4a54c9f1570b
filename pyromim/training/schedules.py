"""Warm-up schedules: the MIM ``beta`` warm-up and the Noam learning-rate warm-up.

``beta`` warm-up (as in the reference MIM code, epochs counted from 1)::

    beta(epoch) = min(1, epoch / warmup_epochs)        (1 when warmup_epochs == 0)

The objective's own ``beta`` is scaled by this factor, and decoder-side samples
(``symmetric=True``) are only switched on once the factor has reached 1.

Noam learning-rate warm-up (Vaswani et al. 2017), normalised so the peak is
the base learning rate ``lr``, with ``s`` optimisation steps counted from 1::

    lr(s) = lr * min(s / W, sqrt(W / s))

linear growth for ``W`` warm-up steps, then decay as ``1 / sqrt(s)``.  The
reference code steps the same formula once per epoch (epoch ``e`` at
``lr * min(e / W, sqrt(W / e))`` with ``W = 3``); here it is stepped per
optimisation step with ``W = warmup_epochs * steps_per_epoch``, which gives the
same decay at epoch ends and a smooth ramp within the warm-up.
"""

from __future__ import annotations

import math


def beta_factor(epoch: int, warmup_epochs: int) -> float:
    """``min(1, epoch / warmup_epochs)`` for 1-based ``epoch`` (1 without warm-up)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(epoch, 0) / warmup_epochs)


class NoamFactor:
    """Learning-rate multiplier ``min(s / W, sqrt(W / s))`` for ``torch.optim.lr_scheduler.LambdaLR``.

    ``LambdaLR`` passes the number of steps taken so far (0 at construction), so
    ``s = steps + 1``.  A callable object (not a closure) keeps the scheduler's
    state dict made of plain numbers, loadable with ``weights_only=True``.
    """

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = int(warmup_steps)

    def __call__(self, steps: int) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        s = steps + 1
        return min(s / self.warmup_steps, math.sqrt(self.warmup_steps / s))
