"""Batches of similar length, so that padded batches carry little padding, for any task."""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from torch.utils.data import DataLoader, Dataset, Sampler

POOL_BATCHES = 100  # training sorts by length within pools of this many batches: little padding, still random


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of pairs of similar length, so they carry little padding; every pair once per epoch.

    Training shuffles the pairs (seeded), sorts them by length within pools of POOL_BATCHES batches, cuts
    the pools into batches once, and serves those batches in a new random order every epoch (fairseq
    does the same). Batches are fixed because Lightning reads len() once: re-cutting them every epoch
    by a token budget would change their number. Evaluation sorts everything and keeps that order.

    Args:
        lengths: (source, target) length of each item.
        batch_size: pairs per batch, unless batch_tokens is set.
        batch_tokens: pairs per batch such that pairs * longest side stays within this budget
            (a single pair longer than the budget gets a batch of its own).
    """

    def __init__(self, lengths: Sequence[tuple[int, int]], *, batch_size: int = 64, batch_tokens: Optional[int] = None,
                 shuffle: bool, seed: int = 0):
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        order = list(range(len(lengths)))
        if shuffle:
            random.Random(seed).shuffle(order)
            mean = sum(max(pair) for pair in lengths) / max(1, len(lengths))
            pool = POOL_BATCHES * (batch_size if batch_tokens is None else max(1, int(batch_tokens / mean)))
        else:
            pool = len(order)
        self.batches = []
        for start in range(0, len(order), max(1, pool)):
            ranked = sorted(order[start : start + pool], key=lambda i: lengths[i])
            self.batches += cut(ranked, lengths, batch_size, batch_tokens)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        batches = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
            self.epoch += 1  # Lightning calls set_epoch only on plain samplers, so count epochs here
        return iter(batches)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def cut(ranked: list[int], lengths: Sequence[tuple[int, int]], batch_size: int, batch_tokens: Optional[int]) -> list[list[int]]:
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


def bucketed_loader(dataset: Dataset, collate_fn: Callable, *, batch_size: int, batch_tokens: Optional[int],
                    shuffle: bool, seed: int, num_workers: int) -> DataLoader:
    """A DataLoader over `dataset` (which must have .lengths()) in length-bucketed batches."""
    sampler = LengthBucketSampler(dataset.lengths(), batch_size=batch_size, batch_tokens=batch_tokens, shuffle=shuffle,
                                  seed=seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                      persistent_workers=num_workers > 0)
