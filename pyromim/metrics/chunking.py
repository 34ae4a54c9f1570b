"""Splitting work over data points and importance samples to fit a memory budget.

Every metric in :mod:`pyromim.metrics` works on blocks of ``(samples, data)``
pairs.  The caller gives a budget in bytes; a block holds at most
``budget // bytes_per_pair`` pairs, where ``bytes_per_pair`` is estimated from
the sizes of the sample sites of one trace (see
:attr:`pyromim.metrics.trace_layout.TraceLayout.pair_numel`) times
:data:`FOOTPRINT_FACTOR`, which covers the distribution parameters, the
element-wise log-densities and the network activations that a trace does not
record.  For the library's autoregressive distributions (PixelCNN, GRU and MADE
decoders), whose networks hold far more than the sites, the outputs of the
network's layers in one scoring pass are added (``TraceLayout.network_numel``):
on ``digits_pixelcnn`` that is 64,064 elements a pair against 80 in its sites,
and evaluating its 359 test digits with 200 samples peaked at 0.7 GB instead
of 8.3 GB.  The estimate is a heuristic: lower the budget if a model of your
own keeps much larger hidden layers than its sample sites.
"""

from __future__ import annotations

from collections.abc import Iterator

#: Default working-set budget of one vectorised block, in bytes (256 MiB).
DEFAULT_MEMORY_BUDGET = 256 * 2**20

#: Multiplier from "elements of the sample sites" to "elements alive at once".
FOOTPRINT_FACTOR = 8


def block_shape(budget_bytes: int, bytes_per_pair: int, num_data: int, num_samples: int) -> tuple[int, int]:
    """Choose ``(data_chunk, sample_chunk)`` so one block fits ``budget_bytes``.

    All samples of a data chunk are preferred in one block (fewest passes);
    when even one datum's samples do not fit, the samples are split instead.
    Both sizes are at least 1, so a budget below one pair still makes progress.
    """
    if budget_bytes <= 0:
        raise ValueError(f"memory budget must be positive bytes, got {budget_bytes}")
    pairs = max(1, budget_bytes // max(1, bytes_per_pair))
    data_chunk = min(num_data, max(1, pairs // max(1, num_samples)))
    sample_chunk = min(num_samples, max(1, pairs // data_chunk))
    return data_chunk, sample_chunk


def spans(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` items covering ``range(total)``."""
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))
