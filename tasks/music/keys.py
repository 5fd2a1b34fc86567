"""Finding a melody's key and moving it to C major or A minor, so every training piece shares one key.

A model that learns each piece in its own key spreads its pitch probabilities over all twelve; in one shared key
they concentrate on its scale, and sampled melodies stay in it (Magenta's melody pipelines transpose to C for the
same reason). The key finder is the Krumhansl-Schmuckler correlation with the Aarden-Essen profiles, music21's
default, written in numpy: it runs on every piece at load time, where music21 would take a minute.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tasks.music.encoding import notes_of

# music21.analysis.discrete.AardenEssen weights, index 0 = the tonic
MAJOR = np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624, 8.15494,
                  0.232998, 4.95122])
MINOR = np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186,
                  7.37619, 1.75623])
C, A = 0, 9  # pitch classes of the shared keys' tonics


def key_of(events: Sequence[int]) -> Optional[tuple[int, bool]]:
    """-> (tonic pitch class, minor) that correlates best with the duration-weighted pitch classes; None without notes."""
    durations = np.zeros(12)
    for start, end, pitch in notes_of(events):
        durations[pitch % 12] += end - start
    if not durations.any():
        return None
    best, found = -np.inf, None
    for minor, weights in ((False, MAJOR), (True, MINOR)):
        for tonic in range(12):
            score = np.corrcoef(durations, np.roll(weights, tonic))[0, 1]
            if score > best:
                best, found = score, (tonic, minor)
    return found


def shift_to_common_key(events: Sequence[int]) -> int:
    """Semitones (-6..+5, the shorter way) that move the melody's key to C major, or A minor if it is minor."""
    key = key_of(events)
    if key is None:
        return 0
    tonic, minor = key
    return ((A if minor else C) - tonic + 6) % 12 - 6


def transposed(events: Sequence[int], shift: int) -> list[int]:
    return [e + shift if e >= 0 else e for e in events]
