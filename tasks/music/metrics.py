"""Statistics of melodies, computed the same way on samples and on held-out pieces so they can be put side by side.

Pitch-class entropy follows muspy's definition (entropy in bits of the histogram of note pitch classes); the interval
histogram counts the steps between successive notes, clipped to an octave either way.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tasks.music.encoding import notes_of


def pitches_of(events: Sequence[int]) -> list[int]:
    return [pitch for _, _, pitch in notes_of(events)]


def pitch_range(events: Sequence[int]) -> int:
    """Semitones between the lowest and highest note (0 for one pitch or none)."""
    pitches = pitches_of(events)
    return max(pitches) - min(pitches) if pitches else 0


def in_key_share(events: Sequence[int]) -> float:
    """Share of notes whose pitch class is in the melody's own key (music21's default key analysis: the
    Krumhansl-Schmuckler correlation with the Aarden-Essen key profiles)."""
    from music21 import note, stream

    pitches = pitches_of(events)
    if not pitches:
        return 0.0
    melody = stream.Stream()
    for start, end, pitch in notes_of(events):
        melody.insert(start, note.Note(pitch, quarterLength=end - start))
    scale = {p.pitchClass for p in melody.analyze("key").getScale().getPitches()}
    return sum(p % 12 in scale for p in pitches) / len(pitches)


def longest_repeat(events: Sequence[int]) -> int:
    """Most notes in a row with the same pitch: large values mean the sampler got stuck."""
    longest = run = 0
    previous = None
    for pitch in pitches_of(events):
        run = run + 1 if pitch == previous else 1
        longest, previous = max(longest, run), pitch
    return longest


def pitch_class_entropy(events: Sequence[int]) -> float:
    """Bits: 0 for one pitch class, log2(12) = 3.58 when all twelve are equally used; a major-scale tune ~2.8."""
    counts = np.bincount([p % 12 for p in pitches_of(events)], minlength=12)
    if counts.sum() == 0:
        return 0.0
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log2(shares)).sum())


MAX_INTERVAL = 12


def interval_histogram(events: Sequence[int]) -> np.ndarray:
    """Counts (25,) of the steps between successive notes, -12..+12 semitones (larger leaps counted at the ends)."""
    pitches = pitches_of(events)
    steps = np.clip(np.diff(pitches), -MAX_INTERVAL, MAX_INTERVAL) if len(pitches) > 1 else np.zeros(0, dtype=int)
    return np.bincount(steps + MAX_INTERVAL, minlength=2 * MAX_INTERVAL + 1).astype(float)


def interval_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation between two interval histograms: 0 same shape, 1 nothing in common."""
    if a.sum() == 0 or b.sum() == 0:
        return 1.0
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def describe(events: Sequence[int]) -> dict[str, float]:
    return {"pitch_range": pitch_range(events), "in_key": in_key_share(events), "longest_repeat": longest_repeat(events),
            "pitch_class_entropy": pitch_class_entropy(events)}


def profile(melodies: Sequence[Sequence[int]]) -> dict:
    """The mean of each statistic over melodies, and their pooled interval histogram (as a plain list)."""
    stats = [describe(m) for m in melodies if pitches_of(m)]
    means = {key: float(np.mean([s[key] for s in stats])) if stats else math.nan for key in describe([])}
    pooled = sum((interval_histogram(m) for m in melodies), np.zeros(2 * MAX_INTERVAL + 1))
    return {**means, "intervals": pooled.tolist()}


def compare(samples: dict, reference: dict) -> dict[str, float]:
    """Two profiles -> {statistic: sample value, reference_<statistic>: its value, interval_distance}."""
    out = {}
    for key in describe([]):
        out[key], out[f"reference_{key}"] = samples[key], reference[key]
    out["interval_distance"] = interval_distance(np.array(samples["intervals"]), np.array(reference["intervals"]))
    return out
