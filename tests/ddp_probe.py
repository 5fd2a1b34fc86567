"""Callbacks that tests add to a real `lstm-suite train` run (with tests/ on PYTHONPATH).

RecordShards writes <out>/rank<R>.json: what this process trained and evaluated on (dataset indices) and the
validation and test metrics it ended up with. RaiseOnRank makes one process fail mid-training; KillSelf
kills the process outright.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback

from tasks.common.sharding import ShardedBatches


def shard_of(loader) -> tuple[list[list[int]], int]:
    """(this process's batches of the current epoch, size of the dataset) of a loader the tasks build."""
    if isinstance(loader.batch_sampler, ShardedBatches):
        return loader.batch_sampler.batches(), len(loader.dataset)
    dataset = loader.dataset
    if hasattr(dataset, "sampler"):  # forecast training: one item per epoch, drawn from its own sampler
        return dataset.sampler.batches(dataset.epoch), len(dataset.inputs)
    # forecast evaluation: a list of window batches; a window is known by its origin in the series
    return [w.origins.tolist() for w in dataset], None


class RecordShards(Callback):
    def __init__(self, out: str):
        self.out = Path(out)
        self.record = {"train": [], "served": [], "val": [], "val_metrics": [], "test_metrics": {}}

    def on_train_epoch_start(self, trainer, pl_module):
        batches, size = shard_of(trainer.train_dataloader)
        self.record["train"].append(batches)
        self.record["train_size"] = size
        self.record["served"].append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.record["train"]:  # a run resumed within an epoch starts without on_train_epoch_start
            self.on_train_epoch_start(trainer, pl_module)
        if isinstance(getattr(batch, "index", None), torch.Tensor):  # batches that say which items they hold
            self.record["served"][-1].append(batch.index.tolist())

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        batches, size = shard_of(trainer.val_dataloaders)
        self.record["val"].append(batches)
        self.record["val_size"] = size
        self.record["val_metrics"].append({k: float(v) for k, v in trainer.callback_metrics.items()
                                           if k.startswith("val/")})

    def on_test_end(self, trainer, pl_module):
        self.record["test_metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        self.record["test"] = shard_of(trainer.test_dataloaders)[0]

    def teardown(self, trainer, pl_module, stage):
        self.record.update(rank=trainer.global_rank, world=trainer.world_size, run_dir=str(trainer.default_root_dir))
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))


class RaiseOnRank(Callback):
    """Rank `rank` raises at training step `step`: the other processes must end too, not wait forever."""

    def __init__(self, rank: int = 1, step: int = 2):
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step >= self.step:
            raise RuntimeError(f"planned failure on rank {self.rank}")


class KillSelf(Callback):
    """SIGKILL this process (no cleanup, as a power cut or the OOM killer would) at optimiser step `step`, or
    while the `save`-th checkpoint of the run is being written. Once: the file `once` marks that it happened
    (a resumed run keeps the run's callbacks, this one included)."""

    def __init__(self, once: str, step: int = 0, save: int = 0):
        self.once, self.step, self.save, self.saves = Path(once), step, save, 0

    def kill(self) -> None:
        if not self.once.exists():
            self.once.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.step and trainer.global_step >= self.step:
            self.kill()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.saves += 1
        if self.saves == self.save:
            self.kill()
