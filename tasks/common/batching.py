"""Batches of similar length, so that padded batches carry little padding, for any task."""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from torch.utils.data import DataLoader, Dataset

from tasks.common.sharding import Batches, sharded_loader

POOL_BATCHES = 100  # training sorts by length within pools of this many batches: little padding, still random


def length_buckets(lengths: Sequence[tuple[int, int]], *, batch_size: int = 64, batch_tokens: Optional[int] = None,
                   shuffle: bool, seed: int = 0) -> Callable[[int], Batches]:
    """epoch -> batches of items of similar length; every item once per epoch.

    Training shuffles the items (seeded), sorts them by length within pools of POOL_BATCHES batches, cuts
    the pools into batches once, and serves those batches in a new random order every epoch (fairseq
    does the same). Batches are fixed because Lightning reads len() once: re-cutting them every epoch
    by a token budget would change their number. Evaluation sorts everything and keeps that order.

    Args:
        lengths: (source, target) length of each item.
        batch_size: items per batch, unless batch_tokens is set.
        batch_tokens: items per batch such that items * longest side stays within this budget
            (a single item longer than the budget gets a batch of its own).
    """
    order = list(range(len(lengths)))
    if shuffle:
        random.Random(seed).shuffle(order)
        mean = sum(max(pair) for pair in lengths) / max(1, len(lengths))
        pool = POOL_BATCHES * (batch_size if batch_tokens is None else max(1, int(batch_tokens / mean)))
    else:
        pool = len(order)
    batches = []
    for start in range(0, len(order), max(1, pool)):
        ranked = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += cut(ranked, lengths, batch_size, batch_tokens)

    def batches_of_epoch(epoch: int) -> Batches:
        if not shuffle:
            return batches
        shuffled = list(batches)
        random.Random(seed + epoch).shuffle(shuffled)
        return shuffled

    return batches_of_epoch


def cut(ranked: list[int], lengths: Sequence[tuple[int, int]], batch_size: int, batch_tokens: Optional[int]) -> Batches:
    """Consecutive runs of `ranked`: batch_size items each, or as many as fit batch_tokens."""
    if batch_tokens is None:
        return [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    batches, batch, longest = [], [], 0
    for i in ranked:
        longest_with_i = max(longest, *lengths[i])
        if batch and longest_with_i * (len(batch) + 1) > batch_tokens:
            batches.append(batch)
            batch, longest_with_i = [], max(lengths[i])
        batch.append(i)
        longest = longest_with_i
    return batches + ([batch] if batch else [])


def bucketed_loader(dataset: Dataset, collate_fn: Callable, trainer, *, batch_size: int, batch_tokens: Optional[int],
                    shuffle: bool, seed: int, num_workers: int) -> DataLoader:
    """A DataLoader over `dataset` (which must have .lengths()) in length-bucketed batches, sharded over the
    processes of `trainer`'s run."""
    batches = length_buckets(dataset.lengths(), batch_size=batch_size, batch_tokens=batch_tokens, shuffle=shuffle,
                             seed=seed)
    return sharded_loader(dataset, batches, trainer, train=shuffle, collate_fn=collate_fn, num_workers=num_workers)
