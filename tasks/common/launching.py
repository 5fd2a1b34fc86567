"""What the launcher that started this process says: torchrun, SLURM, or Lightning's own (one command, which
starts a process per device itself)."""
from __future__ import annotations

import os
from typing import Optional

from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only


def launched_as_rank_zero() -> bool:
    """Before processes connect: whether this one will be global rank 0, from what launchers set."""
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


def launcher_topology() -> Optional[tuple[int, int, str]]:
    """(devices per node, nodes, launcher) when torchrun or SLURM started this process; Lightning refuses a
    devices x num_nodes that differs from what the launcher started, so theirs is the one to use."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env and "LOCAL_WORLD_SIZE" in env:
        local, world = int(env["LOCAL_WORLD_SIZE"]), int(env["WORLD_SIZE"])
        return local, world // local, "torchrun"
    if SLURMEnvironment.detect():  # (not in an interactive srun/salloc shell)
        nodes = int(env.get("SLURM_NNODES", "1"))
        per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]  # "8" or "8(x2)"
        return (int(per_node) if per_node else int(env["SLURM_NTASKS"]) // nodes), nodes, "SLURM"
    return None
