"""Shared machinery of the autoregressive distributions: a network plus a context vector.

An autoregressive distribution ``p(x | c) = prod_t p(x_t | x_<t, c)`` is given by
a network that maps ``(x, c)`` to the logits of every conditional at once
(teacher forcing: the conditional at ``t`` reads the *given* ``x_<t``) and a
context ``c`` (usually a latent ``z``). ``log_prob(x)`` is that one pass;
``sample()`` feeds each drawn value back in, one position at a time, so it is a
true draw of ``p(x | c)`` and never depends on any observed ``x``. This is what
makes a one-site Pyro program ``pyro.sample("x", dist, obs=x)`` correct under
objectives that run the model un-conditioned (symmetric MIM's decoder side).

The batch shape is the context's leading shape (``(particles, batch)`` under
vectorised particles); values broadcast against it.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints


def sample_bernoulli(logits: torch.Tensor) -> torch.Tensor:
    """One draw per logit, ``0.`` or ``1.``."""
    return torch.bernoulli(torch.sigmoid(logits))


def sample_categorical(logits: torch.Tensor) -> torch.Tensor:
    """One draw per row of ``logits`` (last dim) by the Gumbel-max trick: ``argmax(logits + G)``."""
    return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)


def refuse_entries(owner: str, value: torch.Tensor, bad: torch.Tensor, what: str) -> None:
    """Raise a one-line ``ValueError`` naming the first entry of ``value`` where ``bad`` holds, if any."""
    if bad.any():
        where = [int(i) for i in bad.nonzero()[0]]
        raise ValueError(
            f"{owner}: value{where} = {value[tuple(where)].item()} (value shape {tuple(value.shape)}) {what}"
        )


class AutoregressiveDistribution(TorchDistribution):
    """Base class: a conditional autoregressive network and its context.

    Subclasses set ``event_shape`` from the network and implement
    ``_log_prob(value)`` (one teacher-forced pass, value already checked and
    broadcast) and ``_draw(context, greedy)`` (ancestral, on a flat
    ``(N, context_dim)`` context).
    """

    arg_constraints = {"context": constraints.real_vector}
    has_rsample = False

    def __init__(
        self, net: torch.nn.Module, context: torch.Tensor, event_shape: torch.Size, validate_args=None
    ) -> None:
        name = type(self).__name__
        context_dim = int(getattr(net, "context_dim"))
        if context.dim() < 1 or context.shape[-1] != context_dim:
            raise ValueError(
                f"{name}: context has shape {tuple(context.shape)}; its last dim must be the network's "
                f"context_dim={context_dim} (pass z of shape batch + ({context_dim},))"
            )
        self.net = net
        self.context = context
        super().__init__(context.shape[:-1], event_shape, validate_args=validate_args)

    def _new(self, context: torch.Tensor) -> AutoregressiveDistribution:
        """A copy with another context."""
        raise NotImplementedError

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return self._new(self.context.expand(batch_shape + self.context.shape[-1:]))

    # ------------------------------------------------------------------ checks

    def _check_value(self, value: torch.Tensor) -> None:
        """Raise a one-line ``ValueError`` on a value of the wrong event shape or outside the support."""
        name = type(self).__name__
        n = len(self.event_shape)
        if value.dim() < n or value.shape[value.dim() - n :] != self.event_shape:
            raise ValueError(
                f"{name}: value has shape {tuple(value.shape)} but the event shape is {tuple(self.event_shape)}; "
                f"pass values of shape batch + {tuple(self.event_shape)}"
            )
        try:
            torch.broadcast_shapes(value.shape[: value.dim() - n], self.batch_shape)
        except RuntimeError:
            raise ValueError(
                f"{name}: value batch shape {tuple(value.shape[: value.dim() - n])} does not broadcast with the "
                f"context's batch shape {tuple(self.batch_shape)}"
            ) from None
        if not torch.jit.is_tracing():
            self._check_support(value)

    def _check_support(self, value: torch.Tensor) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ interface

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``sum_t log p(x_t | x_<t, c)`` in one teacher-forced pass; shape ``broadcast(value batch, batch_shape)``."""
        self._check_value(value)
        return self._log_prob(value)

    def _log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _draw(self, context: torch.Tensor, greedy: bool) -> torch.Tensor:
        raise NotImplementedError

    def _flat_context(self, sample_shape: torch.Size) -> tuple[torch.Tensor, torch.Size]:
        lead = torch.Size(sample_shape) + self.batch_shape
        return self.context.detach().expand(lead + self.context.shape[-1:]).reshape(-1, self.context.shape[-1]), lead

    def network_numel(self, value: torch.Tensor) -> int:
        """Elements of the network's layer outputs in one scoring pass, per item scored.

        The outputs of every leaf module of ``net`` during ``log_prob(value)`` are
        counted (forward hooks, no gradient): all of a pass's activations as if
        alive at once, an upper bound on its working set. The metrics' memory
        budget (:mod:`pyromim.metrics.chunking`) adds it to each (sample, datum)
        pair, since a convolutional or recurrent network holds far more than the
        sample sites a trace records.
        """
        counted: list[int] = []

        def count(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            outputs = output if isinstance(output, (tuple, list)) else (output,)
            counted.append(sum(t.numel() for t in outputs if isinstance(t, torch.Tensor)))

        leaves = [m for m in self.net.modules() if next(m.children(), None) is None]
        hooks = [m.register_forward_hook(count) for m in leaves]
        try:
            with torch.no_grad():
                items = max(1, self.log_prob(value).numel())
        finally:
            for hook in hooks:
                hook.remove()
        return -(-sum(counted) // items)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Ancestral draws of shape ``sample_shape + batch_shape + event_shape`` (no gradient)."""
        with torch.no_grad():
            context, lead = self._flat_context(torch.Size(sample_shape))
            x = self._draw(context, greedy=False)
            return x.reshape(lead + x.shape[1:])

    def greedy(self) -> torch.Tensor:
        """Greedy ancestral decode: the most probable value at each step given the decoded prefix.

        Not the mode of the joint in general; a deterministic reconstruction
        that feeds no observed value in. Shape ``batch_shape + event_shape``.
        """
        with torch.no_grad():
            context, lead = self._flat_context(torch.Size())
            x = self._draw(context, greedy=True)
            return x.reshape(lead + x.shape[1:])


class DiscreteAutoregressiveDistribution(AutoregressiveDistribution):
    """Binary (Bernoulli logits) or ``K``-level categorical values at every position of the event.

    The network's ``num_categories`` is ``None`` for binary values (float
    ``0.``/``1.``, logits of shape ``batch + event``) or ``K`` for values in
    ``0..K-1`` (integer, logits ``batch + event + (K,)``).
    """

    @property
    def num_categories(self) -> int | None:
        return getattr(self.net, "num_categories")

    @constraints.dependent_property
    def support(self):
        k = self.num_categories
        base = constraints.boolean if k is None else constraints.integer_interval(0, k - 1)
        return constraints.independent(base, len(self.event_shape))

    def _check_support(self, value: torch.Tensor) -> None:
        k = self.num_categories
        if k is None:
            bad = (value != 0) & (value != 1)
            allowed = "0 or 1"
        else:
            bad = (value != value.round()) | (value < 0) | (value > k - 1)
            allowed = f"an integer in 0..{k - 1}"
        refuse_entries(type(self).__name__, value, bad, f"is outside the support; every entry must be {allowed}")

    def _log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits = self.net(value, self.context)
        if self.num_categories is None:
            value = value.to(logits.dtype).expand(logits.shape)
            per_position = -torch.nn.functional.binary_cross_entropy_with_logits(logits, value, reduction="none")
        else:
            index = value.long().expand(logits.shape[:-1]).unsqueeze(-1)
            per_position = logits.log_softmax(-1).gather(-1, index).squeeze(-1)
        return per_position.flatten(per_position.dim() - len(self.event_shape)).sum(-1)

    def _pick(self, logits: torch.Tensor, greedy: bool) -> torch.Tensor:
        """A draw (or the argmax when ``greedy``) from the conditionals with these logits."""
        if self.num_categories is None:
            return (logits > 0).to(logits.dtype) if greedy else sample_bernoulli(logits)
        return logits.argmax(-1) if greedy else sample_categorical(logits)

    @staticmethod
    def _with(x: torch.Tensor, position: tuple[int, ...], values: torch.Tensor) -> torch.Tensor:
        """A copy of ``x`` with ``x[:, *position] = values``.

        A copy, not an in-place write: a traced graph (``JitTrace_MIM``) does not
        keep ``no_grad``, and the earlier passes have saved ``x`` for backward.
        """
        index: tuple[slice | int, ...] = (slice(None), *position)
        x = x.clone()
        x[index] = values
        return x

    def _empty(self, n: int) -> torch.Tensor:
        """An all-zero value batch ``(n,) + event`` of the right dtype, to fill in place."""
        dtype = self.context.dtype if self.num_categories is None else torch.long
        return torch.zeros((n,) + self.event_shape, dtype=dtype, device=self.context.device)
