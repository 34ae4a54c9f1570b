"""Broadcasting an input against a context vector for conditional networks."""

from __future__ import annotations

import torch


def broadcast_context(
    x: torch.Tensor, n_event: int, context: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Broadcast the leading dims of ``x`` (all but its last ``n_event``) against ``context[..., :]``.

    Returns ``x`` flattened to ``(N,) + event``, the context flattened to
    ``(N, context_dim)`` and the common leading shape, so a network can run on
    one flat batch and restore ``lead`` afterwards (plates and vectorised
    particles add leading dims on either side).
    """
    event = x.shape[x.dim() - n_event :]
    lead = torch.broadcast_shapes(x.shape[: x.dim() - n_event], context.shape[:-1])
    x = x.expand(lead + event).reshape((-1,) + event)
    context = context.expand(lead + context.shape[-1:]).reshape(-1, context.shape[-1])
    return x, context, lead
