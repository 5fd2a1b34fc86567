"""Polyphonic piano rolls (88 keys per frame) from the JSB Chorales split of Boulanger-Lewandowski 2012."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from tasks.common.batching import bucketed_loader
from tasks.common.errors import InputError
from tasks.common.splits import SplitDataModule
from tasks.music.render import write_notes_midi

KEYS, LOWEST_PITCH = 88, 21  # piano keys A0..C8
SPLITS = {"train": ("traindata", "train"), "val": ("validdata", "valid"), "test": ("testdata", "test")}


def load_rolls(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read the split as {train, val, test} -> list of (T, 88) uint8 rolls.

    `.mat` is the file Bai et al. 2018 used (keys traindata/validdata/testdata, each piece (T, 88));
    `.json` holds the same split as lists of MIDI pitches per step (keys train/valid/test).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"piano-roll data {path}: no such file (give the JSB Chorales .mat or .json with --data.path)")
    if path.suffix == ".mat":
        from scipy.io import loadmat

        try:
            raw = loadmat(str(path))
        except Exception as error:
            raise InputError(f"piano-roll data {path}: not a readable .mat file ({error})") from None
        missing = [mat_key for mat_key, _ in SPLITS.values() if mat_key not in raw]
        if missing:
            raise InputError(f"piano-roll data {path}: missing {', '.join(missing)} (expected traindata, validdata, testdata)")
        rolls = {split: [np.asarray(p, dtype=np.uint8) for p in raw[mat_key].ravel()] for split, (mat_key, _) in SPLITS.items()}
        bad = [r.shape for rs in rolls.values() for r in rs if r.ndim != 2 or r.shape[1] != KEYS]
        if bad:
            raise InputError(f"piano-roll data {path}: pieces must be (frames, {KEYS}), found {bad[0]}")
        return rolls
    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"piano-roll data {path}: not valid JSON ({error})") from None
        missing = [json_key for _, json_key in SPLITS.values() if json_key not in raw]
        if missing:
            raise InputError(f"piano-roll data {path}: missing {', '.join(missing)} (expected train, valid, test)")
        return {split: [pitches_to_roll(piece, path) for piece in raw[json_key]] for split, (_, json_key) in SPLITS.items()}
    raise InputError(f"piano-roll data {path}: unsupported file type {path.suffix!r} (use .mat or .json)")


def pitches_to_roll(piece: list[list[float]], source: Path | str = "") -> np.ndarray:
    roll = np.zeros((len(piece), KEYS), dtype=np.uint8)
    for t, pitches in enumerate(piece):
        for pitch in pitches:
            key = int(pitch) - LOWEST_PITCH
            if not 0 <= key < KEYS:
                raise InputError(f"piano-roll data {source}: pitch {pitch} is off the piano (21..108)")
            roll[t, key] = 1
    return roll


def roll_to_events(roll: np.ndarray) -> list[tuple[int, int, int]]:
    """(T, 88) roll -> (start frame, end frame, MIDI pitch); a key held over frames is one note."""
    notes = []
    padded = np.vstack([np.zeros((1, KEYS)), roll, np.zeros((1, KEYS))]).astype(np.int8)
    change = np.diff(padded, axis=0)  # +1 where a key goes down, -1 where it comes up
    for key in range(KEYS):
        starts, ends = np.flatnonzero(change[:, key] == 1), np.flatnonzero(change[:, key] == -1)
        notes += [(int(s), int(e), key + LOWEST_PITCH) for s, e in zip(starts, ends)]
    return sorted(notes)


def write_roll_midi(roll: np.ndarray, path: str | Path, tempo_bpm: float = 80.0) -> Path:
    """One frame per quarter note, as in the JSB split."""
    return write_notes_midi(roll_to_events(roll), path, tempo_bpm, velocity=70)


class RollDataset(Dataset):
    """Whole pieces; training pieces are transposed by a random shift that keeps every note on the piano."""

    def __init__(self, rolls: list[np.ndarray], transpose: int = 0):
        self.rolls = [torch.from_numpy(r.astype(np.float32)) for r in rolls]
        self.shifts = []
        for r in rolls:
            used = np.flatnonzero(r.any(axis=0))
            low, high = (used.min(), used.max()) if used.size else (0, KEYS - 1)
            self.shifts.append([s for s in range(-transpose, transpose + 1) if 0 <= low + s and high + s < KEYS])

    def __len__(self) -> int:
        return len(self.rolls)

    def lengths(self) -> list[tuple[int, int]]:
        """Frames of every piece, as the (length, length) pairs length_buckets takes."""
        return [(len(r), len(r)) for r in self.rolls]

    def __getitem__(self, index: int) -> torch.Tensor:
        shift = random.choice(self.shifts[index])
        return torch.roll(self.rolls[index], shift, dims=1) if shift else self.rolls[index]


def collate_rolls(batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> rolls (B, T, 88) zero-padded, lengths (B,)."""
    return pad_sequence(batch, batch_first=True), torch.tensor([len(r) for r in batch])


class PianoRollDataModule(SplitDataModule):
    """The JSB Chorales piano-roll split, from a .mat or .json file the user brings.

    Args:
        path: JSB_Chorales.mat (Bai et al. 2018) or jsb-chorales-quarter.json; required.
        transpose: training pieces are shifted by up to this many semitones either way (0 = off).
        batch_size, num_workers: DataLoader settings.
        seed: the training order (the same on every process, which each serve their share of it).
    """

    def __init__(self, *, path: Optional[str] = None, transpose: int = 0, batch_size: int = 8, num_workers: int = 0,
                 seed: int = 1234):
        super().__init__()
        self.save_hyperparameters()
        self.rolls: dict[str, list[np.ndarray]] = {}

    keys = KEYS

    def setup(self, stage: Optional[str] = None) -> None:
        if self.rolls:
            return
        if not self.hparams.path:
            raise InputError("music-pianoroll needs the JSB Chorales split: pass --data.path=JSB_Chorales.mat "
                             "(or the .json), the Boulanger-Lewandowski 2012 split as used by Bai et al. 2018")
        self.rolls = load_rolls(self.hparams.path)
        counts = ", ".join(f"{k} {len(v)} pieces / {sum(len(r) for r in v)} frames" for k, v in self.rolls.items())
        rank_zero_info(f"{self.hparams.path}: {counts}")

    def split_loader(self, split: str) -> DataLoader:
        # Pieces of similar length share a batch: padding a 300-frame piece to a 3,000-frame one costs 10x.
        train = split == "train"
        return bucketed_loader(RollDataset(self.rolls[split], self.hparams.transpose if train else 0), collate_rolls,
                               self.trainer, batch_size=self.hparams.batch_size, batch_tokens=None, shuffle=train,
                               seed=self.hparams.seed, num_workers=self.hparams.num_workers)
