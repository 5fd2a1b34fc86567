"""Melodies as one event per 16th note, like Magenta's melody encoding.

An event is a MIDI pitch (a note starts), NOTE_OFF (-1: silence starts) or NO_EVENT (-2: whatever
sounds goes on). ``[60, -2, 62, -2, -1, -2]`` is C for an 8th, D for an 8th, an 8th rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tasks.music.render import write_notes_midi

NOTE_OFF, NO_EVENT = -1, -2
STEPS_PER_QUARTER = 4  # 16th-note resolution


@dataclass(frozen=True)
class MelodyVocab:
    """Token ids for events: 5 specials, then one id per pitch in [min_pitch, max_pitch]."""

    min_pitch: int = 48
    max_pitch: int = 84
    PAD, BOS, EOS, HOLD, REST = range(5)
    SPECIALS = 5

    def __post_init__(self):
        if not 0 <= self.min_pitch <= self.max_pitch <= 127:
            raise ValueError(f"need 0 <= min_pitch <= max_pitch <= 127, got {self.min_pitch}..{self.max_pitch}")

    @property
    def size(self) -> int:
        return self.SPECIALS + self.max_pitch - self.min_pitch + 1

    def fits(self, events: Sequence[int], shift: int = 0) -> bool:
        pitches = [e + shift for e in events if e >= 0]
        return not pitches or (self.min_pitch <= min(pitches) and max(pitches) <= self.max_pitch)

    def encode(self, events: Sequence[int], shift: int = 0) -> list[int]:
        """Events (transposed by `shift` semitones) -> token ids; pitches must fit the range."""
        special = {NO_EVENT: self.HOLD, NOTE_OFF: self.REST}
        return [special[e] if e < 0 else self.SPECIALS + e + shift - self.min_pitch for e in events]

    def decode(self, ids: Sequence[int]) -> list[int]:
        """Token ids -> events; PAD, BOS and EOS are dropped."""
        events = []
        for i in ids:
            if i == self.HOLD:
                events.append(NO_EVENT)
            elif i == self.REST:
                events.append(NOTE_OFF)
            elif i >= self.SPECIALS:
                events.append(self.min_pitch + i - self.SPECIALS)
        return events


def melody_part(score):
    """The melody of a score: the part named soprano if there is one, else the highest-sounding part."""
    parts = list(getattr(score, "parts", [])) or [score]
    for part in parts:
        if "soprano" in f"{part.partName} {part.id}".lower():
            return part
    return max(parts, key=lambda p: _mean_pitch(p))


def _mean_pitch(part) -> float:
    pitches = [p.midi for n in part.flatten().notes for p in n.pitches]
    return sum(pitches) / len(pitches) if pitches else -1.0


def melody_events(part, steps_per_quarter: int = STEPS_PER_QUARTER) -> list[int]:
    """A music21 part -> events on a 16th grid; chords give their top note, ties continue the note."""
    notes = []  # [start, end, pitch], start/end in steps
    for n in part.flatten().notes:
        start = round(float(n.offset) * steps_per_quarter)
        end = round(float(n.offset + n.quarterLength) * steps_per_quarter)
        if end <= start:
            continue  # grace notes have no duration
        pitch = max(p.midi for p in n.pitches)
        tie = n.tie.type if n.tie is not None else None
        if tie in ("continue", "stop") and notes and notes[-1][2] == pitch and notes[-1][1] == start:
            notes[-1][1] = end
            continue
        if notes and start < notes[-1][1]:  # overlap: keep the higher note, cut the lower one short
            if start == notes[-1][0]:
                if pitch <= notes[-1][2]:
                    continue
                notes.pop()
            else:
                notes[-1][1] = start
        notes.append([start, end, pitch])
    if not notes:
        return []
    total = max(end for _, end, _ in notes)
    events = [NO_EVENT] * total
    if notes[0][0] > 0:
        events[0] = NOTE_OFF
    for k, (start, end, pitch) in enumerate(notes):
        events[start] = pitch
        next_start = notes[k + 1][0] if k + 1 < len(notes) else total
        if end < next_start:
            events[end] = NOTE_OFF
    return events


def read_melody(path: str | Path) -> list[int]:
    """Parse a score or MIDI file with music21 and return its melody as events.

    music21's own cache of parsed files (pickles in its scratch folder) is bypassed: it writes them in place, so a
    process parsing the same file at the same time reads half a pickle and the file would be skipped for good.
    The melody cache makes it redundant anyway.
    """
    from music21 import converter

    return melody_events(melody_part(converter.parse(str(path), forceSource=True, storePickle=False)))


def parse_primer(text: str) -> list[int]:
    """'[60, -2, 62, -2]' or '60 -2 62' -> events, with a clear error on anything else."""
    cleaned = text.strip().strip("[]").replace(",", " ").split()
    try:
        events = [int(v) for v in cleaned]
    except ValueError:
        raise ValueError(f"primer {text!r}: expected MIDI pitches, -1 (note off) and -2 (hold), e.g. '[60, -2, 62]'")
    if not events or any(e < NO_EVENT or e > 127 for e in events):
        raise ValueError(f"primer {text!r}: values must be -2, -1 or a MIDI pitch 0..127")
    return events


def notes_of(events: Sequence[int], steps_per_quarter: int = STEPS_PER_QUARTER) -> list[tuple[float, float, int]]:
    """Events -> (start, end, pitch) notes in quarter notes."""
    notes, current = [], None
    for step, e in enumerate(list(events) + [NOTE_OFF]):
        if e == NO_EVENT:
            continue
        if current is not None:
            notes.append((current[0] / steps_per_quarter, step / steps_per_quarter, current[1]))
            current = None
        if e >= 0:
            current = (step, e)
    return notes


def write_midi(events: Sequence[int], path: str | Path, tempo_bpm: float = 100.0, program: int = 0) -> Path:
    """Write events as a one-track MIDI file."""
    return write_notes_midi(notes_of(events), path, tempo_bpm, program)
