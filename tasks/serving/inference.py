"""What each task answers, given a loaded model and checked options: the work shared by the server and the demo.

Files (MIDI, PNG, WAV, plots) are written into a folder the caller owns; the server sends their bytes, the demo
shows them. Bad input raises BadRequest with one line.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from tasks.common.errors import InputError, describe_error
from tasks.music.encoding import STEPS_PER_QUARTER, parse_primer, write_midi
from tasks.music.metrics import describe
from tasks.music.pianoroll_data import LOWEST_PITCH, pitches_to_roll, write_roll_midi
from tasks.music.render import melody_roll, piano_roll_png, render_wav
from tasks.music.sample import DEFAULT_CHORD, parse_chords
from tasks.serving.errors import UNPROCESSABLE, UNSUPPORTED, BadRequest
from tasks.serving.options import FORMATS
from tasks.speech.audio import SAMPLE_RATE, log_mel, read_audio


@dataclass
class Piece:
    """One sampled melody (events) or piano roll (the MIDI pitches of each frame), and its files by format."""

    notes: list
    stats: dict
    files: dict[str, Path] = field(default_factory=dict)  # midi, png and, when fluidsynth is installed, wav


def _files(midi: Path, roll: np.ndarray, formats: Sequence[str], **png_options) -> dict[str, Path]:
    files = {"midi": midi}
    if "png" in formats:
        files["png"] = piano_roll_png(roll, midi.with_suffix(".png"), title=midi.stem, **png_options)
    wav = render_wav(midi, midi.with_suffix(".wav")) if "wav" in formats else None
    if wav is not None:
        files["wav"] = wav
    return files


def as_text(value) -> Optional[str]:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def sample_melodies(model, folder: Path, *, num: int, length: int, temperature: float = 1.0, top_k: int = 0,
                    top_p: float = 1.0, seed: Optional[int] = None, greedy: bool = False, primer=None,
                    tempo: float = 100.0, formats: Sequence[str] = FORMATS) -> list[Piece]:
    """Melodies from a MelodyModel. primer: events, as '[60, -2, 62]' or a list."""
    try:
        events = parse_primer(as_text(primer)) if primer is not None else []
        melodies = model.generate(num, length, primer=events, temperature=temperature, top_k=top_k, top_p=top_p,
                                  seed=seed, greedy_decoding=greedy)
    except ValueError as error:  # a primer that is not events, or outside the model's pitch range
        raise BadRequest(str(error), UNPROCESSABLE) from None
    pieces = []
    for i, melody in enumerate(melodies, start=1):
        midi = write_midi(melody, folder / f"melody_{i:02d}.mid", tempo_bpm=tempo)
        files = _files(midi, melody_roll(melody), formats, steps_per_quarter=STEPS_PER_QUARTER)
        pieces.append(Piece(melody, describe(melody), files))
    return pieces


def sample_piano_rolls(model, folder: Path, *, num: int, frames: int, seed: Optional[int] = None, primer=None,
                       tempo: float = 80.0, formats: Sequence[str] = FORMATS) -> list[Piece]:
    """Polyphonic pieces from a PianoRollModel. primer: chords, as '48,60,64,67', '[[48,60],[50,62]]' or a list."""
    try:
        start = pitches_to_roll(parse_chords(as_text(primer)) if primer is not None else [DEFAULT_CHORD], "primer")
    except (InputError, json.JSONDecodeError, TypeError, ValueError) as error:
        raise BadRequest(f"primer {as_text(primer)!r}: expected MIDI pitches 21..108 like '48,60,64,67' or "
                         f"[[48,60],[50,62]] ({describe_error(error)})", UNPROCESSABLE) from None
    pieces = []
    for i, roll in enumerate(model.generate(num, frames, start, seed=seed), start=1):
        midi = write_roll_midi(roll, folder / f"piece_{i:02d}.mid", tempo_bpm=tempo)
        files = _files(midi, roll, formats, lowest_pitch=LOWEST_PITCH, steps_per_quarter=1)
        pitches = [(np.flatnonzero(frame) + LOWEST_PITCH).tolist() for frame in roll]
        pieces.append(Piece(pitches, {"notes_per_frame": round(float(roll.sum(1).mean()), 3)}, files))
    return pieces


def translate(model, texts: list[str], beam: Optional[int] = None) -> list[str]:
    """Sentences -> translations, decoded together; blank sentences stay blank."""
    todo = [i for i, text in enumerate(texts) if text.strip()]
    out = [""] * len(texts)
    for i, translation in zip(todo, model.translate([texts[i] for i in todo], beam_size=beam) if todo else []):
        out[i] = translation
    return out


def audio_features(model, audio: bytes | str | Path) -> tuple[torch.Tensor, float]:
    """An audio file (its bytes or its path; any format soundfile reads) -> (log-mel features, seconds)."""
    try:
        samples = read_audio(io.BytesIO(audio) if isinstance(audio, bytes) else str(audio))
    except Exception as error:  # soundfile's errors for a file it cannot read are of several kinds
        why = getattr(error, "error_string", None) or describe_error(error)  # (libsndfile's, without the file object)
        raise BadRequest(f"cannot read the audio ({why}): send WAV, FLAC, OGG or MP3", UNSUPPORTED) from None
    try:
        return log_mel(samples, model.hparams.n_mels), len(samples) / SAMPLE_RATE
    except ValueError as error:  # shorter than one analysis window
        raise BadRequest(f"audio {error}", UNPROCESSABLE) from None


def read_clip(model, path: str | Path) -> np.ndarray:
    """A video file -> the frames the model reads, (N, height, width, 3) uint8."""
    from tasks.video.decode import decode_clip

    h = model.hparams
    try:
        return decode_clip(path, frames=h.cache_frames, height=h.height, width=h.width, fps=h.get("cache_fps"))
    except (ValueError, OSError) as error:
        raise BadRequest(f"cannot read the video ({describe_error(error)})", UNSUPPORTED) from None


def top_classes(model, clips: list[np.ndarray], top: int) -> list[list[tuple[str, float]]]:
    """Decoded clips -> their `top` likeliest classes with probabilities, likeliest first."""
    names = model.class_names
    best = model.probabilities(clips).topk(min(top, len(names)), dim=-1)
    return [[(names[i], round(float(p), 6)) for p, i in zip(ps.tolist(), ids.tolist())]
            for ps, ids in zip(best.values, best.indices)]


@dataclass
class Forecast:
    target: str
    time_column: str
    times: list[str]
    values: list[float]
    source: str
    plot: Optional[Path] = None


def forecast(model, *, horizon: Optional[int] = None, series: Optional[Path] = None,
             plot: Optional[Path] = None) -> Forecast:
    """The next `horizon` steps (default: the trained horizon) past the training data or past a newer `series`
    file; with `plot`, also a PNG of them after the recent history."""
    from tasks.forecast.forecast import history_of
    from tasks.forecast.plot import forecast_png
    from tasks.forecast.series import future_times, show_time

    info = model.hparams.series_info
    steps = horizon or model.hparams.horizon
    try:
        history, times, step, source = history_of(model, None if series is None else str(series))
        values = model.forecast(steps, history)
    except InputError as error:
        message = str(error) if series is None else str(error).replace(f"{Path(series).parent}/", "")  # no temp paths
        message = message.split("; set --data.")[0]  # (a hint for training's options, not for this request)
        raise BadRequest(message, UNPROCESSABLE) from None
    future = future_times(times[-1], step, steps)
    target = info["columns"][0]
    if plot is not None:
        recent = max(model.hparams.timesteps, 3 * int(info.get("season") or 52))
        line = {f"forecast, {steps} steps": ([times[-1], *future], np.r_[history[-1, 0], values])}
        forecast_png(plot, times[-recent:], history[-recent:, 0], line, title=f"{target}: forecast past "
                     f"{show_time(times[-1])}", ylabel=target, split_at=times[-1])
    return Forecast(target, info["time_column"] or "step", [show_time(t) for t in future],
                    [round(float(v), 6) for v in values], source if series is None else Path(series).name, plot)
