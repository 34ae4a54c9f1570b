"""Active units (Burda, Grosse & Salakhutdinov 2016).

A latent dimension ``u`` is active when its posterior mean moves with the data:

    A_u = Var_{x ~ data}( E_{q(z|x)}[z_u] ) > threshold   (0.01 by default).

A collapsed dimension (posterior equal to a data-independent distribution)
has ``A_u = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyromim.data.batches import Batch
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET
from pyromim.metrics.encodings import encode
from pyromim.metrics.trace_layout import inspect_layout


@dataclass(frozen=True)
class ActiveUnits:
    """Per-dimension variance of the posterior mean, and which dimensions exceed the threshold.

    Dimensions are the guide's latent sites flattened and concatenated in trace order.
    """

    num_active: int
    variance: torch.Tensor
    active: torch.Tensor
    threshold: float


@torch.no_grad()
def active_units(
    guide: Callable,
    data: Batch,
    threshold: float = 0.01,
    *,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> ActiveUnits:
    """Count the latent dimensions whose posterior mean varies across ``data``.

    Posterior means are the latent sites' ``fn.mean`` (each site's parents at
    their means); the guide's latent distributions must implement ``.mean``.
    The variance is the population variance over the ``N`` data points.
    """
    layout = inspect_layout(None, guide, data, plate_name)
    means = encode(guide, data, layout, "mean", memory_budget).double()
    variance = means.var(0, unbiased=False)
    active = variance > threshold
    return ActiveUnits(num_active=int(active.sum()), variance=variance, active=active, threshold=threshold)
