"""Running a network over arbitrary leading batch dimensions."""

from __future__ import annotations

from collections.abc import Callable

import torch


def over_leading_dims(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n_trailing: int) -> torch.Tensor:
    """Apply ``fn`` to ``x`` viewed as ``(N,) + x.shape[-n_trailing:]`` and restore the leading dims.

    Lets encoders and decoders accept the extra leading dimensions that plates
    and vectorised particles add (e.g. ``(particles, batch, C, H, W)``).
    """
    lead = x.shape[: x.dim() - n_trailing]
    y = fn(x.reshape((-1,) + x.shape[x.dim() - n_trailing :]))
    return y.reshape(lead + y.shape[1:])
