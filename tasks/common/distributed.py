"""What the tasks need from torch.distributed beyond Lightning's own: results gathered from every process,
and checkpoints read where they were written (global rank 0) rather than on every node.

Each function here is a collective when several processes run: call it on every rank, or the others wait.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from tasks.common.atomic import save_atomic


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(obj: Any) -> list[Any]:
    """`obj` of every process, in rank order ([obj] in a single process). Picklable Python objects."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` as process `src` has it, on every process."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class RankZeroCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written by global rank 0 (Lightning's rule); this reads them there too and sends them to
    the other processes, so that testing the best checkpoint or resuming works on nodes that do not share
    rank 0's filesystem. A read error on rank 0 reaches every rank, instead of leaving them waiting.
    Local files are written with tasks.common.atomic (unique temp name, fsync, rename): a kill mid-write
    leaves the previous checkpoint whole."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_atomic(path, lambda file: torch.save(checkpoint, file))

    def load_checkpoint(self, path, *args, **kwargs) -> dict:
        if world_size() == 1:
            return super().load_checkpoint(path, *args, **kwargs)
        checkpoint, error = None, None
        if dist.get_rank() == 0:
            try:
                checkpoint = super().load_checkpoint(path, *args, **kwargs)
            except Exception as exc:  # sent on as text: every rank raises the same error
                error = f"{type(exc).__name__}: {exc}"
        checkpoint, error = broadcast_object((checkpoint, error))
        if error is not None:
            raise RuntimeError(f"reading checkpoint {path} on rank 0 failed: {error}")
        return checkpoint
