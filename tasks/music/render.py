"""Make music files, visible and audible: MIDI, piano-roll PNGs, and WAVs through fluidsynth when it is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/soundfonts/default.sf2")


def write_notes_midi(notes: Iterable[tuple[float, float, int]], path: str | Path, tempo_bpm: float,
                     program: int = 0, velocity: int = 80) -> Path:
    """(start, end, pitch) notes, times in quarter notes -> a one-track MIDI file with that tempo and GM program."""
    import mido

    ticks_per_quarter = 480
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    messages = []
    for start, end, pitch in notes:
        messages.append((round(start * ticks_per_quarter), 1, pitch))  # note on
        messages.append((round(end * ticks_per_quarter), 0, pitch))  # offs sort before ons at a tick
    now = 0
    for tick, on, pitch in sorted(messages):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity if on else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=ticks_per_quarter))
    midi = mido.MidiFile(ticks_per_beat=ticks_per_quarter)
    midi.tracks.append(track)
    path = Path(path)
    midi.save(str(path))
    return path


def piano_roll_png(roll: np.ndarray, path: str | Path, title: str = "", lowest_pitch: int = 0, steps_per_quarter: int = 4) -> Path:
    """roll (T, P) of 0/1 (pitch lowest_pitch + p sounding at step t) -> a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    roll = np.asarray(roll)
    used = np.flatnonzero(roll.any(axis=0))
    low, high = (used.min(), used.max()) if used.size else (0, roll.shape[1] - 1)
    low, high = max(0, low - 2), min(roll.shape[1] - 1, high + 2)
    fig, ax = plt.subplots(figsize=(min(16, 2 + roll.shape[0] / 24), 3.5), dpi=100)
    ax.imshow(roll[:, low : high + 1].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, roll.shape[0] / steps_per_quarter, lowest_pitch + low - 0.5, lowest_pitch + high + 0.5))
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def melody_roll(events: Sequence[int]) -> np.ndarray:
    """Events -> (T, 128) roll with onsets marked so that repeated notes stay visible."""
    from tasks.music.encoding import notes_of

    roll = np.zeros((len(events), 128), dtype=np.float32)
    for start, end, pitch in notes_of(events, steps_per_quarter=1):
        roll[int(start) : int(end), pitch] = 0.6
        roll[int(start), pitch] = 1.0
    return roll


def soundfont() -> Optional[str]:
    candidates = [os.environ.get("LSTM_SUITE_SOUNDFONT", "")] + list(SOUNDFONTS)
    return next((c for c in candidates if c and Path(c).is_file()), None)


def audio_unavailable_reason() -> Optional[str]:
    if shutil.which("fluidsynth") is None:
        return "fluidsynth is not installed (apt-get install fluidsynth fluid-soundfont-gm)"
    if soundfont() is None:
        return "no General MIDI soundfont found (apt-get install fluid-soundfont-gm, or set LSTM_SUITE_SOUNDFONT)"
    return None


def render_wav(midi_path: str | Path, wav_path: str | Path, sample_rate: int = 22050) -> Optional[Path]:
    """MIDI -> WAV with fluidsynth; None when fluidsynth or a soundfont is missing."""
    if audio_unavailable_reason() is not None:
        return None
    wav_path = Path(wav_path)
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "1.0", "-r", str(sample_rate), "-F", str(wav_path), soundfont(), str(midi_path)],
        check=True, capture_output=True, timeout=120,
    )
    return wav_path
