"""Which examples each process sees. Every task's loaders are built here, so that N processes (DDP on several
devices or nodes) split an epoch between them instead of each repeating it.

Every rank draws the same global batches of an epoch (from a seed all ranks share, and the epoch number
Lightning passes to `set_epoch`) and takes every world-th one. Training evens out the number of batches, so
that all ranks step together: DDP syncs gradients at every step, and a rank with one batch more would wait
for the others forever. Evaluation serves each example exactly once, with no padding and no repeats, so a
metric over the split is the one a single device computes.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tasks.common.errors import InputError

Batches = list[list[int]]


def replica(trainer) -> tuple[int, int]:
    """(rank, number of processes) of this process in `trainer`'s run; (0, 1) without a trainer."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def resume_point(trainer) -> tuple[int, int]:
    """(epoch, batches of it already trained) where training starts: (0, 0), or where a resumed run left off
    (a checkpoint written at a batch end counts that batch as processed, not yet completed).
    Lightning creates the first epoch's iterator before it calls set_epoch, so the sampler must know."""
    loop = getattr(trainer, "fit_loop", None)
    if loop is None:
        return 0, 0
    epoch = loop.epoch_progress.current
    mid_epoch = epoch.started > epoch.processed  # a checkpoint written within an epoch
    return epoch.processed, loop.epoch_loop.batch_progress.current.processed if mid_epoch else 0


def split_largest(batches: Batches, enough: Callable[[int], bool]) -> Batches:
    """Halve the largest batch until `enough(number of batches)`; a split batch stays in its place."""
    batches = [list(b) for b in batches]
    while not enough(len(batches)):
        largest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if largest is None or len(batches[largest]) < 2:
            raise InputError(f"{sum(map(len, batches))} examples cannot be shared out in this many batches "
                             "per process: use fewer processes or more data")
        batch = batches[largest]
        batches[largest : largest + 1] = [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
    return batches


class ShardedBatches(Sampler[list[int]]):
    """This process's batches of an epoch (lists of dataset indices), a DataLoader's batch_sampler.

    Args:
        batches_of_epoch: epoch -> the global batches of that epoch, the same on every rank.
        rank, world: this process and how many there are.
        train: even out the count (equal batches on every rank, each example once per epoch); else every
            rank gets at least one batch (a rank without any would miss the metric syncs at epoch end).
        epoch, skip: where the first iteration starts (a resumed run: the epoch, and the batches of it that
            were trained before the interruption, which it does not serve again).
    """

    def __init__(self, batches_of_epoch: Callable[[int], Batches], *, rank: int = 0, world: int = 1, train: bool,
                 epoch: int = 0, skip: int = 0):
        self.batches_of_epoch, self.rank, self.world, self.train = batches_of_epoch, rank, world, train
        self.epoch, self.skip = epoch, skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> "ShardedBatches":
        return self  # Lightning calls set_epoch on `batch_sampler.sampler` when each epoch starts

    def batches(self, epoch: Optional[int] = None) -> Batches:
        """This rank's batches of `epoch` (default: the current one), without side effects."""
        every = self.batches_of_epoch(self.epoch if epoch is None else epoch)
        if self.world > 1:
            if self.train:
                every = split_largest(every, lambda n: n >= self.world and n % self.world == 0)
            else:
                every = split_largest(every, lambda n: n >= self.world)
        return every[self.rank :: self.world]

    def __iter__(self):
        skip, self.skip = self.skip, 0
        return iter(self.batches()[skip:])

    def __len__(self) -> int:
        return len(self.batches())


def shuffled_batches(size: int, batch_size: int, seed: int) -> Callable[[int], Batches]:
    """epoch -> a new seeded permutation of range(size), cut into batches of batch_size (the last may be short)."""

    def batches_of_epoch(epoch: int) -> Batches:
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch))
        return [part.tolist() for part in order.split(batch_size)]

    return batches_of_epoch


def ordered_batches(size: int, batch_size: int) -> Callable[[int], Batches]:
    """epoch -> range(size) in order, cut into batches of batch_size: evaluation."""
    batches = [list(range(start, min(size, start + batch_size))) for start in range(0, size, batch_size)]
    return lambda epoch: batches


def sharded_loader(dataset: Dataset, batches_of_epoch: Callable[[int], Batches], trainer, *, train: bool,
                   collate_fn: Optional[Callable] = None, num_workers: int = 0, **loader_options) -> DataLoader:
    """A DataLoader serving this process's share of `batches_of_epoch` (see the module docstring)."""
    rank, world = replica(trainer)
    epoch, skip = resume_point(trainer) if train else (0, 0)
    sampler = ShardedBatches(batches_of_epoch, rank=rank, world=world, train=train, epoch=epoch, skip=skip)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                      persistent_workers=num_workers > 0, **loader_options)


def plain_loader(dataset: Dataset, trainer, *, train: bool, batch_size: int, seed: int,
                 collate_fn: Optional[Callable] = None, num_workers: int = 0, **loader_options) -> DataLoader:
    """Batches of batch_size: shuffled per epoch for training, in order for evaluation; sharded over processes."""
    batches = shuffled_batches(len(dataset), batch_size, seed) if train else ordered_batches(len(dataset), batch_size)
    return sharded_loader(dataset, batches, trainer, train=train, collate_fn=collate_fn, num_workers=num_workers,
                          **loader_options)
