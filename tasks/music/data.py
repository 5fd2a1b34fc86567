"""Melody data: the Bach chorales inside music21 by default, or any folder of MIDI files."""
from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from tasks.common.atomic import builds_cache_once, write_atomic
from tasks.common.caching import stamp_digest
from tasks.common.errors import InputError
from tasks.common.sharding import plain_loader
from tasks.common.splits import SplitDataModule
from tasks.common.workers import describe_failures, run_on_files
from tasks.music.encoding import STEPS_PER_QUARTER, MelodyVocab, read_melody
from tasks.music.keys import shift_to_common_key, transposed

SCORE_SUFFIXES = {".mxl", ".xml", ".musicxml", ".krn"}  # music21's Bach folder also holds 20 .rntxt analyses
MIDI_SUFFIXES = {".mid", ".midi"}
CACHE_VERSION = 1  # bump when the encoding changes, so old caches are not reused


def chorale_paths() -> list[str]:
    from music21 import corpus

    return sorted(str(p) for p in corpus.getComposer("bach") if p.suffix.lower() in SCORE_SUFFIXES)


def midi_paths(midi_dir: str | Path) -> list[str]:
    root = Path(midi_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"midi_dir {root}: no such folder")
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"midi_dir {root}: no .mid or .midi files in it")
    return paths


def split_of(name: str, val_percent: int, test_percent: int) -> str:
    """A stable split by piece: the same file lands in the same split on every machine and run."""
    bucket = zlib.crc32(Path(name).name.encode()) % 100
    return "test" if bucket < test_percent else "val" if bucket < test_percent + val_percent else "train"


class MelodyDataset(Dataset):
    """Token sequences [BOS] events [EOS], cut into windows of at most max_len events.

    Training draws a random window and a random transposition per item; evaluation walks each piece
    in fixed windows with no transposition, so every event is scored exactly once.
    """

    def __init__(self, melodies: list[list[int]], vocab: MelodyVocab, max_len: int, train: bool, transpose: int = 0):
        self.vocab, self.max_len, self.train = vocab, max_len, train
        self.melodies = melodies
        self.shifts = [[s for s in range(-transpose, transpose + 1) if vocab.fits(m, s)] for m in melodies]
        if train:
            self.windows = [(i, 0) for i in range(len(melodies))]
        else:
            self.windows = [(i, start) for i, m in enumerate(melodies) for start in range(0, len(m), max_len)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        piece, start = self.windows[index]
        events, shift = self.melodies[piece], 0
        if self.train:
            start = random.randint(0, max(0, len(events) - self.max_len))
            shift = random.choice(self.shifts[piece])
        window = events[start : start + self.max_len]
        ids = self.vocab.encode(window, shift)
        if start == 0:
            ids = [self.vocab.BOS] + ids
        if start + len(window) == len(events):
            ids = ids + [self.vocab.EOS]
        return torch.tensor(ids, dtype=torch.long)


def collate_tokens(batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> tokens (B, T) padded with 0, lengths (B,)."""
    lengths = torch.tensor([len(x) for x in batch])
    return pad_sequence(batch, batch_first=True, padding_value=MelodyVocab.PAD), lengths


class MelodyDataModule(SplitDataModule):
    """Monophonic melodies as 16th-note events.

    Args:
        midi_dir: a folder of MIDI files to learn from; None uses the Bach chorales shipped with music21.
        cache_dir: where parsed melodies are kept, so parsing happens once per source.
        min_pitch, max_pitch: the pitch range of the vocabulary (Magenta's melody models use 48..84);
            melodies outside it are dropped with a count.
        max_len: events per training window.
        transpose: training items are transposed by up to this many semitones either way.
        common_key: move every piece (all splits) to C major or A minor first (tasks/music/keys.py), so the
            model learns one key and its samples stay in it; use transpose 0 with it, which would undo it.
        val_percent, test_percent: share of pieces held out, chosen by a hash of the file name.
        batch_size, num_workers: DataLoader settings.
        parse_workers: processes that parse files in prepare_data (0 = one per core).
        seed: the training order (the same on every process, which each serve their share of it).
    """

    def __init__(
        self,
        *,
        midi_dir: Optional[str] = None,
        cache_dir: str = "~/.cache/lstm-suite/music",
        min_pitch: int = 48,
        max_pitch: int = 84,
        max_len: int = 256,
        transpose: int = 0,
        common_key: bool = True,
        val_percent: int = 10,
        test_percent: int = 10,
        batch_size: int = 32,
        num_workers: int = 0,
        parse_workers: int = 0,
        seed: int = 1234,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vocab = MelodyVocab(min_pitch, max_pitch)
        self.splits: dict[str, list[list[int]]] = {}

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def min_pitch(self) -> int:
        return self.vocab.min_pitch

    def _sources(self) -> tuple[list[str], str]:
        if self.hparams.midi_dir:
            return midi_paths(self.hparams.midi_dir), f"MIDI files in {self.hparams.midi_dir}"
        return chorale_paths(), "Bach chorales (music21 corpus)"

    def cache_path(self, paths: list[str]) -> Path:
        stamp = [CACHE_VERSION, STEPS_PER_QUARTER] + [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths]
        return Path(self.hparams.cache_dir).expanduser() / f"melodies-{stamp_digest(stamp)}.json"

    @builds_cache_once
    def prepare_data(self) -> None:
        paths, what = self._sources()
        cache = self.cache_path(paths)
        if cache.exists():
            return
        melodies, failures = run_on_files(read_melody, paths, desc=f"Parsing {what}", workers=self.hparams.parse_workers)
        empty = [p for p, events in melodies.items() if not events]
        failures.update({p: "no notes" for p in empty})
        melodies = {p: events for p, events in melodies.items() if events}
        if failures:
            rank_zero_warn(describe_failures(failures, len(paths), what))
        if not melodies:
            raise InputError(f"no readable melody in {what}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps({"source": what, "melodies": melodies, "skipped": failures}))

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        paths, what = self._sources()
        cache = json.loads(self.cache_path(paths).read_text())
        h = self.hparams
        splits: dict[str, list[list[int]]] = {"train": [], "val": [], "test": []}
        out_of_range = 0
        moved = 0
        for name, events in sorted(cache["melodies"].items()):
            if h.common_key:
                events, shifted = self._to_common_key(events)
                moved += shifted
            if not self.vocab.fits(events):
                out_of_range += 1
                continue
            splits[split_of(name, h.val_percent, h.test_percent)].append(events)
        if cache["skipped"]:
            rank_zero_warn(describe_failures(cache["skipped"], len(paths), what))
        if out_of_range:
            rank_zero_warn(f"dropped {out_of_range} melodies with pitches outside {h.min_pitch}..{h.max_pitch}")
        if h.common_key:
            rank_zero_info(f"{moved} of {len(cache['melodies'])} pieces transposed to C major / A minor")
        empty = [k for k, v in splits.items() if not v]
        if empty:
            raise InputError(f"{what}: no pieces in the {', '.join(empty)} split; add files or change val/test_percent")
        self.splits = splits
        counts = ", ".join(f"{k} {len(v)} pieces / {sum(map(len, v))} events" for k, v in splits.items())
        rank_zero_info(f"{what}: {counts}")

    def _to_common_key(self, events: list[int]) -> tuple[list[int], bool]:
        """-> the melody in C major / A minor (an octave the other way if the shorter move leaves the vocabulary's
        range), or as it was if neither fits; and whether it moved."""
        shift = shift_to_common_key(events)
        for candidate in (shift, shift - 12 if shift > 0 else shift + 12):
            if shift and self.vocab.fits(events, candidate):
                return transposed(events, candidate), True
        return events, False

    def split_loader(self, split: str) -> DataLoader:
        train = split == "train"
        dataset = MelodyDataset(self.splits[split], self.vocab, self.hparams.max_len, train, self.hparams.transpose if train else 0)
        return plain_loader(dataset, self.trainer, train=train, batch_size=self.hparams.batch_size, seed=self.hparams.seed,
                            collate_fn=collate_tokens, num_workers=self.hparams.num_workers)
