"""Small generated music data for the tests."""
from __future__ import annotations

import random
from pathlib import Path

from tasks.music.encoding import NO_EVENT, NOTE_OFF, write_midi


def scale_melody(rng: random.Random, notes: int = 24) -> list[int]:
    """Quarter-note runs up and down a major scale: very predictable, so a tiny model learns it fast."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12]
    tonic = rng.randint(57, 67)
    degrees = [steps[i % 8] if (i // 8) % 2 == 0 else steps[7 - i % 8] for i in range(notes)]
    events = []
    for d in degrees:
        events += [tonic + d, NO_EVENT, NO_EVENT, NO_EVENT]
    return events + [NOTE_OFF, NO_EVENT, NO_EVENT, NO_EVENT]


def write_melody_folder(folder: Path, count: int, seed: int = 0) -> list[list[int]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    melodies = [scale_melody(rng) for _ in range(count)]
    for i, events in enumerate(melodies):
        write_midi(events, folder / f"tune_{i:03d}.mid")
    return melodies
