"""One split's cached features as a Dataset, and utterances -> a padded Batch for CTC.

Shapes: B batch, T feature frames (10 ms each, padded with 0), M mel bands, L labels (padded with the blank, 0).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from tasks.speech.audio import log_mel, read_audio, single_threaded
from tasks.speech.vocab import BLANK


class Batch(NamedTuple):
    features: torch.Tensor  # (B, T, M) float32: normalised log-mel, padded with 0
    feature_lengths: torch.Tensor  # (B,) long: real frames in features
    targets: torch.Tensor  # (B, L) long: label ids, padded with the blank (0, never a real label)
    target_lengths: torch.Tensor  # (B,) long: real labels in targets
    index: torch.Tensor  # (B,) long: position of each utterance in data.utterances[split]


class SpeechDataset(Dataset):
    """One split's cached features with their labels; item i -> (features (T, M) float32, labels (L,) long, i).

    `augment` (SpecAugment, for training) is drawn anew on every access.
    """

    def __init__(self, features: torch.Tensor, spans: list[tuple[int, int]], labels: list[list[int]],
                 augment: Optional[torch.nn.Module] = None):
        self.features, self.spans, self.labels, self.augment = features, spans, labels, augment

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        start, end = self.spans[i]
        features = self.features[start:end].float()  # (T, M)
        if self.augment is not None:
            features = self.augment(features)
        return features, torch.tensor(self.labels[i], dtype=torch.long), i

    def lengths(self) -> list[tuple[int, int]]:
        """Frames of every item, as the (length, length) pairs length_buckets takes."""
        return [(end - start, end - start) for start, end in self.spans]


def collate_utterances(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    features, labels, positions = zip(*items)
    return Batch(
        features=pad_sequence(features, batch_first=True, padding_value=0.0),
        feature_lengths=torch.tensor([len(f) for f in features]),
        targets=pad_sequence(labels, batch_first=True, padding_value=BLANK),
        target_lengths=torch.tensor([len(t) for t in labels]),
        index=torch.tensor(positions),
    )


def ctc_frames_needed(labels: list[int]) -> int:
    """CTC needs a frame per label, plus a blank between two equal neighbours."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


class AudioDataset(Dataset):
    """Training clips read from their audio files on every access, so waveform augmentation (augment.py) draws
    anew each epoch; then features and SpecAugment as the cached path has them. Item i -> as SpeechDataset's."""

    def __init__(self, audio: list[str], frames: list[int], labels: list[list[int]], n_mels: int, wave_augment,
                 augment: Optional[torch.nn.Module] = None):
        self.audio, self.frames, self.labels, self.n_mels = audio, frames, labels, n_mels
        self.wave_augment, self.augment = wave_augment, augment

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        with single_threaded():
            features = log_mel(self.wave_augment(read_audio(self.audio[i])), self.n_mels)
        if self.augment is not None:
            features = self.augment(features)
        return features, torch.tensor(self.labels[i], dtype=torch.long), i

    def lengths(self) -> list[tuple[int, int]]:
        """Frames of every clip before augmentation (speed changes them by 10% at most), for length buckets."""
        return [(n, n) for n in self.frames]
