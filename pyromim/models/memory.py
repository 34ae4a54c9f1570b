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


def estimate_memory(spec: ModelSpec) -> MemoryEstimate:
    """The weights (by key) and per-item layer outputs of the model ``spec`` describes."""
    m, d = spec.model, spec.data
    data_size = math.prod(d.shape)
    features = data_size * ((d.vocab_size or 1) if d.kind == "tokens" else 1)
    top = m.top_latent_dim if m.levels == 2 and m.top_latent_dim else m.latent_dim
    estimate = MemoryEstimate()
    data_key = "data.shape"
    for table, net in (("encoder", spec.encoder), ("decoder", spec.decoder)):
        hidden_key = f"{table}.{'hidden' if net.network == 'mlp' else 'channels'}"
        if net.network == "conv":
            channels = [d.shape[0], *net.channels]
            for c_in, c_out in zip(channels, channels[1:]):
                estimate.add_layer(9 * c_in, c_out, hidden_key, hidden_key)
            hidden = [(w, f"{table}.hidden") for w in net.hidden[-1:]]
        else:
            hidden = [(w, hidden_key) for w in net.hidden]
        if table == "encoder":
            estimate.add_mlp([(features, data_key), *hidden, (2 * top, "model.latent_dim")])
        else:
            estimate.add_mlp([(m.latent_dim, "model.latent_dim"), *hidden, (_n_params(spec) * data_size, data_key)])
    if m.prior == "vampprior":
        estimate.weights["model.prior_components"] = m.prior_components * features
    elif m.prior != "normal":
        estimate.weights["model.prior_components"] = 2 * m.prior_components * top
    if m.marginal_components:
        estimate.weights["model.marginal_components"] = m.marginal_components * m.latent_dim
    if m.levels == 2:
        hidden = [(w, "model.conditional_hidden") for w in m.conditional_hidden]
        estimate.add_mlp([(top, "model.top_latent_dim"), *hidden, (2 * m.latent_dim, "model.latent_dim")])
        estimate.add_mlp([(features + top, data_key), *hidden, (2 * m.latent_dim, "model.latent_dim")])
    return estimate


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
