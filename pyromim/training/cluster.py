"""Training on several machines: refuse ``num_nodes > 1`` where no cluster environment says how to reach the others.

Lightning waits forever for machines that never come when ``num_nodes > 1`` is
asked on a lone machine; :func:`check_num_nodes` refuses it at once instead.
"""

from __future__ import annotations

import os

#: Environment variables a hand-made multi-machine launch sets on every machine (Lightning's own environment).
MANUAL_CLUSTER_VARIABLES = ("MASTER_ADDR", "NODE_RANK")


def cluster_environment() -> str | None:
    """The name of the cluster environment this process runs in (SLURM, torchelastic, LSF, MPI, or
    one set by hand with ``MASTER_ADDR`` and ``NODE_RANK``), or ``None``."""
    from lightning.fabric.plugins.environments import (
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    for environment in (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment, MPIEnvironment):
        if environment.detect():
            return environment.__name__.removesuffix("Environment")
    if all(os.environ.get(name) for name in MANUAL_CLUSTER_VARIABLES):
        return "MASTER_ADDR/NODE_RANK"
    return None


def check_num_nodes(num_nodes: int, option: str = "num_nodes") -> None:
    """Refuse ``num_nodes > 1`` outside a cluster environment (see :func:`cluster_environment`).

    :param option: how the caller names the setting in the message (``--num-nodes`` on the command line).
    :raises ValueError: in one line saying what to do.
    """
    if num_nodes > 1 and cluster_environment() is None:
        raise ValueError(
            f"{option} {num_nodes}: no cluster environment found (SLURM, torchrun, LSF, MPI, or MASTER_ADDR "
            "and NODE_RANK set on every machine), so the other machines could never join; on one machine "
            f"use the devices setting (--devices N) instead, or start the run through the cluster's launcher"
        )
