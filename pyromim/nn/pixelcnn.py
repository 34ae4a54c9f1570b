"""Gated PixelCNN (van den Oord et al. 2016) over one-channel images, conditioned on a vector.

Two stacks of gated layers make the receptive field of pixel ``(i, j)`` exactly
the pixels before it in raster order, with no blind spot:

* the **vertical** stack convolves ``(k//2 + 1) x k`` windows that end at the
  current row (padding on top and on both sides only), so its features at row
  ``i`` see rows ``<= i``;
* the **horizontal** stack convolves ``1 x (k//2 + 1)`` windows that end at the
  current column; its first layer reads the image shifted one column right
  (mask "A": column ``j`` itself is hidden), later layers read their own
  column (mask "B");
* the vertical features reach the horizontal stack shifted one row down, so
  pixel ``(i, j)`` receives rows ``< i`` from it.

Each layer is gated, ``tanh(a_f + c_f) * sigmoid(a_g + c_g)``, with a
conditioning bias ``c = V z`` per layer (the "conditional PixelCNN"); the
horizontal stack has residual connections. The head (ReLU, 1x1 conv, ReLU,
1x1 conv) gives one Bernoulli logit or ``K`` categorical logits per pixel.

No convolution pads at the bottom, so the outputs of row ``i`` depend on input
rows ``<= i`` only; and each layer reaches ``k//2`` rows further up, the
vertical-to-horizontal link one more, so they depend on the rows
``i - R .. i`` only, ``R = 1 + num_layers * (k//2)`` (the *reach*).
:meth:`GatedPixelCNN.row_logits` runs the network on those rows alone: the cost
of one ancestral step no longer grows with the image height.
"""

from __future__ import annotations

import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from pyromim.nn.context import broadcast_context


def _down_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (0, 0, 1, 0))[..., :-1, :]


def _right_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 0, 0, 0))[..., :, :-1]


def _gate(a: torch.Tensor) -> torch.Tensor:
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class _GatedLayer(nn.Module):
    def __init__(self, c_in: int, channels: int, kernel: int, context_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.kernel = kernel
        half = kernel // 2
        self.v_conv = nn.Conv2d(c_in, 2 * channels, (half + 1, kernel))
        self.h_conv = nn.Conv2d(c_in, 2 * channels, (1, half + 1))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.v_cond = nn.Linear(context_dim, 2 * channels, bias=False)
        self.h_cond = nn.Linear(context_dim, 2 * channels, bias=False)

    def forward(self, v: torch.Tensor, h: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.kernel // 2
        v_pre = self.v_conv(F.pad(v, (half, half, half, 0)))
        h_in = _right_shift(h) if self.first else h
        h_pre = self.h_conv(F.pad(h_in, (half, 0, 0, 0))) + self.v_to_h(_down_shift(v_pre))
        v_new = _gate(v_pre + self.v_cond(context)[:, :, None, None])
        h_gated = self.h_out(_gate(h_pre + self.h_cond(context)[:, :, None, None]))
        h_new = h_gated if self.first else h + h_gated
        return v_new, h_new


class GatedPixelCNN(PyroModule):
    """Conditional gated PixelCNN over ``H x W`` one-channel images.

    :param image_shape: ``(H, W)``.
    :param context_dim: size of the context vector (the latent ``z``).
    :param num_categories: ``None`` for binary pixels (one Bernoulli logit
        each); ``K >= 2`` for pixels in ``0..K-1`` (inputs one-hot, ``K``
        logits each).
    :param channels: feature channels of every gated layer.
    :param num_layers: number of gated layers (the first is mask "A").
    :param kernel: odd kernel width ``k`` (the vertical window is ``(k//2+1) x k``).

    ``forward(x, context)`` maps ``x`` of shape ``batch + (h, W)`` (any
    ``h <= H`` rows, see the module docstring) and a context broadcastable to
    ``batch + (context_dim,)`` to logits ``batch + (h, W)`` (binary) or
    ``batch + (h, W, K)`` (categorical).
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        context_dim: int,
        num_categories: int | None = None,
        channels: int = 32,
        num_layers: int = 4,
        kernel: int = 3,
    ) -> None:
        super().__init__()
        if len(image_shape) != 2:
            raise ValueError(f"GatedPixelCNN image_shape must be (H, W), got {tuple(image_shape)}")
        if kernel < 3 or kernel % 2 == 0 or num_layers < 1:
            raise ValueError(f"GatedPixelCNN needs an odd kernel >= 3 and num_layers >= 1, got {kernel}, {num_layers}")
        if num_categories is not None and int(num_categories) < 2:
            raise ValueError(f"GatedPixelCNN num_categories must be None (binary) or >= 2, got {num_categories}")
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.context_dim = int(context_dim)
        self.num_categories = None if num_categories is None else int(num_categories)
        c_in = 1 if self.num_categories is None else self.num_categories
        self.layers = nn.ModuleList(
            _GatedLayer(c_in if i == 0 else channels, channels, kernel, self.context_dim, first=i == 0)
            for i in range(num_layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, c_in, 1))
        #: rows above that the outputs of a row depend on (see the module docstring)
        self.reach = 1 + int(num_layers) * (int(kernel) // 2)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_categories is None:
            return x.to(torch.get_default_dtype()).unsqueeze(1)
        return F.one_hot(x.long(), self.num_categories).movedim(-1, 1).to(torch.get_default_dtype())

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x, context, lead = broadcast_context(x, 2, context)
        v = h = self._encode(x)
        for layer in self.layers:
            v, h = layer(v, h, context)
        out = self.head(h)
        out = out.squeeze(1) if self.num_categories is None else out.movedim(1, -1)
        return out.reshape(lead + out.shape[1:])

    def row_logits(self, x: torch.Tensor, context: torch.Tensor, row: int) -> torch.Tensor:
        """The logits of one row, from a pass over rows ``row - reach .. row`` only.

        Equal to ``forward(x, context)[..., row, :]`` (rows below ``row`` are not
        read) at a fraction of its cost on tall images: ``reach + 1`` rows
        instead of ``H``.
        """
        top = max(0, row - self.reach)
        out = self.forward(x[..., top : row + 1, :], context)
        return out.select(out.dim() - (2 if self.num_categories is None else 3), -1)
