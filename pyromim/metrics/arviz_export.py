"""ArviZ bridge: PSIS via ArviZ and an ``InferenceData`` view of a fitted model/guide pair."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pyro
import torch

from pyromim.data.batches import Batch, batch_length, take
from pyromim.metrics.chunking import DEFAULT_MEMORY_BUDGET, block_shape, spans
from pyromim.metrics.encodings import bytes_per_pair
from pyromim.metrics.per_datum import importance_block, site_log_prob, site_values
from pyromim.metrics.trace_layout import inspect_layout

if TYPE_CHECKING:
    import xarray
    from arviz import InferenceData


def load_arviz() -> ModuleType:
    """Import ArviZ (an optional dependency: ``pip install pyromim[metrics]``).

    ArviZ announces its coming refactor with a ``FutureWarning`` on import; it
    is not actionable here and is silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz
    except ImportError as err:
        raise ImportError("this metric needs ArviZ; install it with `pip install pyromim[metrics]`") from err
    return arviz


def _coords_and_dims(
    arrays: dict[str, np.ndarray], per_datum_dims: int
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Name ``datum`` and ``<site>_dim`` for arrays shaped (..., datum[, site_dim])."""
    coords: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    for name, array in arrays.items():
        names = ["datum", f"{name}_dim"][:per_datum_dims]
        for dim, size in zip(names, array.shape[-per_datum_dims:]):
            coords[dim] = np.arange(size)
        dims[name] = names
    return coords, dims


def _dataset(arrays: dict[str, np.ndarray], per_datum_dims: int, sampled: bool) -> xarray.Dataset:
    az = load_arviz()
    coords, dims = _coords_and_dims(arrays, per_datum_dims)
    return az.dict_to_dataset(arrays, coords=coords, dims=dims, default_dims=None if sampled else [], library=pyro)


@torch.no_grad()
def to_inference_data(
    model: Callable,
    guide: Callable,
    data: Batch,
    num_samples: int = 100,
    *,
    num_chains: int = 1,
    plate_name: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> InferenceData:
    """An :class:`arviz.InferenceData` of a fitted model/guide pair on ``data``.

    Draws ``z_s ~ q(z | x_i)`` (``num_samples`` per datum, split into
    ``num_chains`` chains of independent draws) and builds the groups

    * ``posterior``: every latent site, dims ``(chain, draw, datum, <site>_dim)``;
    * ``posterior_predictive``: every observed site drawn from ``p(x | z_s)``,
      dims ``(chain, draw, datum, <site>_dim)``;
    * ``observed_data``: every observed site's data, dims ``(datum, <site>_dim)``;
    * ``log_likelihood``: ``log p(x_i | z_s)`` per observed site and datum,
      dims ``(chain, draw, datum)``.

    ``<site>_dim`` indexes the site's value per datum flattened (other plates
    and event dims).  The draws come from the guide, not from MCMC: ``r_hat``
    and ESS in ``az.summary`` describe independent draws.
    """
    if num_samples % num_chains:
        raise ValueError(f"num_samples={num_samples} must split evenly into num_chains={num_chains}")
    layout = inspect_layout(model, guide, data, plate_name)
    data_chunk, _ = block_shape(memory_budget, bytes_per_pair(layout), batch_length(data), num_samples)
    groups: dict[str, dict[str, list[torch.Tensor]]] = {
        g: {} for g in ("posterior", "posterior_predictive", "observed_data", "log_likelihood")
    }

    def add(group: str, name: str, value: torch.Tensor) -> None:
        groups[group].setdefault(name, []).append(value)

    for span in spans(batch_length(data), data_chunk):
        x = take(data, span)
        guide_sites, model_sites = importance_block(model, guide, x, num_samples, layout)
        for name in layout.latent_sites:
            add("posterior", name, site_values(name, guide_sites[name], layout))
        for name in layout.observed_sites:
            site = model_sites[name]
            add("observed_data", name, site_values(name, site, layout)[0])
            draws = {**site, "value": site["fn"].sample()}
            add("posterior_predictive", name, site_values(name, draws, layout))
            add("log_likelihood", name, site_log_prob(name, site, layout, batch_length(x)))

    def stacked(group: str, drawn: bool) -> dict[str, np.ndarray]:
        out = {}
        for name, blocks in groups[group].items():
            array = torch.cat(blocks, 1 if drawn else 0).cpu().numpy()
            if drawn:
                array = array.reshape(num_chains, num_samples // num_chains, *array.shape[1:])
            out[name] = array
        return out

    az = load_arviz()
    return az.InferenceData(
        posterior=_dataset(stacked("posterior", True), 2, True),
        posterior_predictive=_dataset(stacked("posterior_predictive", True), 2, True),
        observed_data=_dataset(stacked("observed_data", False), 2, False),
        log_likelihood=_dataset(stacked("log_likelihood", True), 1, True),
    )
