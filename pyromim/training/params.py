"""Making every parameter of a Pyro model/guide pair visible to PyTorch (and so to Lightning).

Parameters of ``nn.Module``/``PyroModule`` models and guides are already module
parameters.  Parameters created with ``pyro.param`` inside plain functions live
only in Pyro's global param store, as plain leaf tensors: an optimizer could
use them, but ``state_dict``, checkpoints and DDP gradient averaging would not
see them.  :class:`StoreParameters` turns those into ``nn.Parameter`` objects
(installed back into the param store with its public ``set_state``, so
``pyro.param`` returns the very tensors that are optimised) and registers them
in one module under their sorted Pyro names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyro
import pyro.poutine as poutine
import torch
from torch import nn


def param_sites_used(fn: Callable[[], object]) -> list[str]:
    """Names of the Pyro param sites touched while calling ``fn()`` (sorted)."""
    with poutine.trace(param_only=True) as tape:
        fn()
    return sorted(name for name, site in tape.trace.nodes.items() if site["type"] == "param")


class StoreParameters(nn.Module):
    """Param-store parameters that no model/guide module owns, as ``nn.Parameter`` s.

    :param names: Pyro parameter names, in the order of ``params``.
    :param params: the parameters (each the object the param store holds).
    """

    def __init__(self, names: Iterable[str], params: Iterable[nn.Parameter]) -> None:
        super().__init__()
        self.names = list(names)
        self.params = nn.ParameterList(list(params))

    @classmethod
    def adopt(cls, names: Iterable[str], owner: nn.Module) -> StoreParameters:
        """Adopt the store parameters ``names`` that ``owner`` does not already hold."""
        owned = {id(p) for p in owner.parameters()}
        store = pyro.get_param_store()
        state = store.get_state()
        kept: list[str] = []
        params: list[nn.Parameter] = []
        replaced: dict[str, torch.Tensor] = {}
        for name in sorted(set(names)):
            tensor = state["params"][name]
            if id(tensor) in owned:
                continue
            if not isinstance(tensor, nn.Parameter):
                tensor = nn.Parameter(tensor.detach().clone())
                replaced[name] = tensor
            kept.append(name)
            params.append(tensor)
        if replaced:
            store.set_state({"params": replaced, "constraints": {n: state["constraints"][n] for n in replaced}})
        return cls(kept, params)
