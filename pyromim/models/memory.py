"""How much memory a spec needs, estimated from its sizes before anything is allocated.

A spec may ask for more than any machine has (``latent_dim = 10**9`` is a
400 GB weight matrix, ``batch_size = 10**20`` a batch no memory holds); the
estimate lets :func:`~pyromim.models.build_model` and training refuse such a
spec in one line that names the key, instead of failing inside PyTorch's
allocator (or being killed by the system) after files were written.

The estimate is a lower bound: float32 weights of every linear and
convolutional layer, priors and pseudo-inputs; for training, the weights with
their gradients and Adam's two moments, plus one batch's layer outputs kept
for the backward pass. A spec is refused only when that bound exceeds the
machine's memory, so a refusal is never a false alarm.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyromim.blocks.likelihoods import LIKELIHOODS
from pyromim.specs import ModelSpec, SpecError
from pyromim.specs.schema import NetworkSpec

__all__ = ["MemoryEstimate", "available_memory", "check_memory", "estimate_memory"]

#: Bytes of one float32 value.
FLOAT_BYTES = 4
#: Copies of each weight while training with Adam: the weight, its gradient, two moments.
TRAINING_COPIES = 4


@dataclass
class MemoryEstimate:
    """Weights by the spec key that sets their size, and the layer outputs of one item."""

    weights: dict[str, int] = field(default_factory=dict)
    outputs_per_item: int = 0

    @property
    def n_weights(self) -> int:
        return sum(self.weights.values())

    def largest_key(self) -> str:
        return max(self.weights, key=lambda key: self.weights[key]) if self.weights else "model.latent_dim"

    def add_layer(self, n_in: int, n_out: int, key_in: str, key_out: str) -> None:
        """A dense map ``n_in -> n_out``; its weights count against the key of the larger side."""
        key = key_in if n_in > n_out else key_out
        self.weights[key] = self.weights.get(key, 0) + (n_in + 1) * n_out
        self.outputs_per_item += n_out

    def add_mlp(self, widths: list[tuple[int, str]]) -> None:
        for (n_in, key_in), (n_out, key_out) in zip(widths, widths[1:]):
            self.add_layer(n_in, n_out, key_in, key_out)


def _n_params(spec: ModelSpec) -> int:
    """Numbers the decoder emits per data element (without building the likelihood)."""
    if spec.data.kind == "tokens" and spec.data.vocab_size is not None:
        return spec.data.vocab_size
    cls = LIKELIHOODS[spec.model.likelihood]
    if spec.model.likelihood == "gaussian":
        return 2 if spec.model.likelihood_scale == "per_datum" else 1
    return int(getattr(cls, "n_params", 1))


def _norm_weights(norm: str, widths: list[int]) -> int:
    """Weights of the normalisation layers after hidden layers of ``widths`` (a scale and a shift each)."""
    return 0 if norm == "none" else 2 * sum(widths)


def _add_conv_encoder(estimate: MemoryEstimate, net: NetworkSpec, shape: list[int], head: tuple[int, str]) -> None:
    """Stride-2 3x3 convolutions (``H -> ceil(H / 2)``), then a dense map to ``hidden[-1]`` and the head."""
    c, h, w = shape
    for c_out in net.channels:
        h, w = (h + 1) // 2, (w + 1) // 2
        estimate.weights["encoder.channels"] = estimate.weights.get("encoder.channels", 0) + (9 * c + 1) * c_out
        estimate.outputs_per_item += c_out * h * w
        c = c_out
    estimate.add_mlp([(c * h * w, "encoder.channels"), (net.hidden[-1], "encoder.hidden"), head])


def _add_conv_decoder(
    estimate: MemoryEstimate, net: NetworkSpec, latent: tuple[int, str], shape: list[int], n_params: int
) -> None:
    """A dense map to ``channels[0]`` maps, then stride-2 transposed convolutions up to the data's ``H x W``."""
    n = len(net.channels)
    heights, widths = [shape[1]], [shape[2]]
    for _ in range(n):
        heights.append((heights[-1] + 1) // 2)
        widths.append((widths[-1] + 1) // 2)
    heights, widths = heights[::-1], widths[::-1]
    estimate.add_mlp([latent, (net.channels[0] * heights[0] * widths[0], "decoder.channels")])
    chans = [*net.channels, n_params * shape[0]]
    for i in range(n):
        key = "decoder.channels" if i < n - 1 else "data.shape"
        estimate.weights[key] = estimate.weights.get(key, 0) + (9 * chans[i] + 1) * chans[i + 1]
        estimate.outputs_per_item += chans[i + 1] * heights[i + 1] * widths[i + 1]


def estimate_memory(spec: ModelSpec) -> MemoryEstimate:
    """The weights (by the key that sets their number) and per-item layer outputs of the model ``spec`` describes.

    Every parameter :func:`~pyromim.models.build_model` creates is counted: the
    encoder (an MLP, or convolutions and a dense layer) and its Gaussian head,
    the decoder, normalisation layers, a learned Gaussian scale, the prior's own
    parameters (a learned normal's ``2 d``; a mixture's ``K (2 d + 1)``; a
    VampPrior's ``K`` pseudo-inputs of the data's size and ``K d`` scales), the
    learned marginal's ``K d`` pseudo-latents and, for two levels, the
    conditional networks of ``p(z | z2)`` and ``q(z | x, z2)``.
    """
    m, d = spec.model, spec.data
    data_size = math.prod(d.shape)
    features = data_size * ((d.vocab_size or 1) if d.kind == "tokens" else 1)
    two_levels = m.levels == 2 and m.top_latent_dim is not None
    top = m.top_latent_dim if two_levels and m.top_latent_dim else m.latent_dim
    top_key = "model.top_latent_dim" if two_levels else "model.latent_dim"
    estimate = MemoryEstimate()
    data_key = "data.shape"
    enc, dec = spec.encoder, spec.decoder
    head = (2 * top, top_key)
    if enc.network == "conv":
        _add_conv_encoder(estimate, enc, list(d.shape), head)
    else:
        estimate.add_mlp([(features, data_key), *[(w, "encoder.hidden") for w in enc.hidden], head])
        _add(estimate, "encoder.hidden", _norm_weights(enc.norm, enc.hidden[:-1]))
    if dec.network == "conv":
        _add_conv_decoder(estimate, dec, (m.latent_dim, "model.latent_dim"), list(d.shape), _n_params(spec))
    else:
        widths = [(m.latent_dim, "model.latent_dim"), *[(w, "decoder.hidden") for w in dec.hidden]]
        estimate.add_mlp([*widths, (_n_params(spec) * data_size, data_key)])
        _add(estimate, "decoder.hidden", _norm_weights(dec.norm, dec.hidden))
    if m.likelihood == "gaussian" and m.likelihood_scale == "learned":
        _add(estimate, data_key, data_size)
    if m.prior == "learned_normal":
        _add(estimate, top_key, 2 * top)
    elif m.prior == "mixture":
        _add(estimate, "model.prior_components", m.prior_components * (2 * top + 1))
    elif m.prior == "vampprior":
        _add(estimate, "model.prior_components", m.prior_components * (features + top))
    if m.marginal_components:
        _add(estimate, "model.marginal_components", m.marginal_components * m.latent_dim)
    if two_levels:
        hidden = [(w, "model.conditional_hidden") for w in m.conditional_hidden]
        estimate.add_mlp([(top, top_key), *hidden, (2 * m.latent_dim, "model.latent_dim")])
        joint = (features + top, top_key if top > features else data_key)
        estimate.add_mlp([joint, *hidden, (2 * m.latent_dim, "model.latent_dim")])
    return estimate


def _add(estimate: MemoryEstimate, key: str, n: int) -> None:
    if n:
        estimate.weights[key] = estimate.weights.get(key, 0) + n


def available_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or a smaller container limit; ``None`` if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:,.1f} GB"


def check_memory(
    spec: ModelSpec,
    *,
    batch_size: int | None = None,
    training: bool = False,
    available: int | None = None,
    where: str | None = None,
) -> MemoryEstimate:
    """Raise :class:`~pyromim.specs.SpecError`, naming the key, if ``spec`` needs more memory than there is.

    :param batch_size: also count one batch of layer outputs (kept for the backward pass).
    :param training: count each weight four times (gradient and Adam's moments).
    :param available: bytes available (default :func:`available_memory`).
    """
    estimate = estimate_memory(spec)
    available = available_memory() if available is None else available
    if available is None:
        return estimate
    where = where or f"spec '{spec.name}'"
    copies = TRAINING_COPIES if training else 1
    weights = estimate.n_weights * FLOAT_BYTES * copies
    outputs = 2 * (batch_size or 0) * estimate.outputs_per_item * FLOAT_BYTES  # forward values and their gradients
    if weights + outputs <= available:
        return estimate
    machine = f"this machine has {_gb(available)}"
    if weights >= outputs:
        key = estimate.largest_key()
        value = _value(spec, key)
        what = "its weights" + (", their gradients and Adam's moments" if training else "")
        raise SpecError(
            f"{where}: '{key}' = {value} needs at least {_gb(weights + outputs)} for {what} "
            f"({estimate.n_weights:.3g} weights), but {machine}; lower it"
        )
    raise SpecError(
        f"{where}: 'training.batch_size' = {batch_size} needs at least {_gb(weights + outputs)} for one batch "
        f"({estimate.outputs_per_item:.3g} layer outputs per item, kept for the backward pass), but {machine}; "
        f"lower it (--batch-size)"
    )


def _value(spec: ModelSpec, key: str) -> object:
    table, name = key.split(".")
    return getattr(getattr(spec, table), name)
