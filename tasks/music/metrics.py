"""Descriptive statistics of sampled melodies (Magenta-style sanity checks, not quality scores)."""
from __future__ import annotations

from typing import Sequence

from tasks.music.encoding import notes_of


def pitches_of(events: Sequence[int]) -> list[int]:
    return [pitch for _, _, pitch in notes_of(events)]


def pitch_range(events: Sequence[int]) -> int:
    """Semitones between the lowest and highest note (0 for one pitch or none)."""
    pitches = pitches_of(events)
    return max(pitches) - min(pitches) if pitches else 0


def in_key_share(events: Sequence[int]) -> float:
    """Share of notes whose pitch class is in the melody's own key (music21's default key analysis: the Krumhansl-Schmuckler
    correlation with the Aarden-Essen key profiles)."""
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


def describe(events: Sequence[int]) -> dict[str, float]:
    return {"pitch_range": pitch_range(events), "in_key": in_key_share(events), "longest_repeat": longest_repeat(events)}
