"""`lstm-suite sample music`: melodies from a checkpoint, as MIDI, piano-roll PNG and (with fluidsynth) WAV."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

from tasks.common.arguments import (CommandParser, non_negative_int, output_folder, positive_float, positive_int,
                                    probability, user_path)
from tasks.common.checkpoints import add_checkpoint_arguments, chosen_checkpoint, load_model
from tasks.common.errors import InputError
from tasks.music.encoding import STEPS_PER_QUARTER, parse_primer, read_melody, write_midi
from tasks.music.melody_model import MelodyModel
from tasks.music.metrics import compare, describe, profile
from tasks.music.pianoroll_data import LOWEST_PITCH, pitches_to_roll, write_roll_midi
from tasks.music.pianoroll_model import PianoRollModel
from tasks.music.render import audio_unavailable_reason, melody_roll, piano_roll_png, render_wav


def common_parser(task: str, description: str) -> argparse.ArgumentParser:
    p = CommandParser(prog=f"lstm-suite sample {task}", description=description)
    add_checkpoint_arguments(p, task)
    p.add_argument("--num", type=positive_int, default=4, help="number of pieces")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible samples")
    p.add_argument("--tempo", type=positive_float, default=100.0, help="tempo of the written MIDI, quarter notes per minute")
    p.add_argument("--out", type=user_path, default=None, help="output folder (default: <run>/samples/<time>)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = common_parser("music", "Sample melodies from a trained music checkpoint. Writes one .mid, one piano-roll "
                      ".png and, when fluidsynth is installed, one .wav per melody, and prints what it wrote.")
    p.add_argument("--length", type=positive_int, default=128, help="events to generate per melody, in 16th notes (128 = 8 bars of 4/4)")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="<1 plays safer, >1 takes more risks")
    p.add_argument("--top-k", type=non_negative_int, default=0, help="sample only among the k likeliest events (0 = all)")
    p.add_argument("--top-p", type=probability, default=1.0, help="sample only from the smallest set with this probability")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest event (one melody per primer)")
    p.add_argument("--primer", default=None,
                   help="how melodies begin: a MIDI/MusicXML file, or events like '[60, -2, 62, -2]' (pitch, -1 note off, -2 hold)")
    return p


def checkpoint_and_folder(args: argparse.Namespace, task: str) -> tuple[Path, Path]:
    ckpt = chosen_checkpoint(args, task)
    out = args.out or ckpt.parent.parent / "samples" / time.strftime("%Y%m%d-%H%M%S")
    return ckpt, output_folder(out, "--out")


def load_primer(text: str | None) -> list[int]:
    if text is None:
        return []
    path = Path(text).expanduser()
    if path.suffix and path.exists():
        try:
            events = read_melody(path)
        except Exception as error:
            raise InputError(f"primer {path}: cannot read it as MIDI or a score ({type(error).__name__}: {error})") from None
        if not events:
            raise InputError(f"primer {path}: has no notes")
        return events
    if path.suffix.lower() in (".mid", ".midi", ".xml", ".mxl", ".musicxml"):
        raise InputError(f"primer {path}: no such file")
    try:
        return parse_primer(text)
    except ValueError as error:
        raise InputError(str(error)) from None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    ckpt, out = checkpoint_and_folder(args, "music")
    primer = load_primer(args.primer)
    model = load_model(MelodyModel, ckpt)
    try:
        melodies = model.generate(args.num, args.length, primer=primer, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, seed=args.seed, greedy_decoding=args.greedy)
    except ValueError as error:
        raise InputError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    print(f"Sampling {args.num} melodies of {args.length} 16ths from {ckpt}"
          + (f" after a {len(primer)}-event primer" if primer else " from the start of a piece"))
    for i, events in enumerate(melodies, start=1):
        stem = out / f"melody_{i:02d}"
        midi = write_midi(events, stem.with_suffix(".mid"), tempo_bpm=args.tempo)
        png = piano_roll_png(melody_roll(events), stem.with_suffix(".png"), title=f"{stem.name} ({ckpt.name})",
                             steps_per_quarter=STEPS_PER_QUARTER)
        stats = describe(events)
        print(f"  {written(midi, png)}   range {stats['pitch_range']} semitones, {stats['in_key']:.0%} in key, "
              f"pitch-class entropy {stats['pitch_class_entropy']:.2f} bits, longest repeat {stats['longest_repeat']}")
    print(side_by_side(profile(melodies), model.reference_profile))
    return finish(out)


def side_by_side(sampled: dict, reference: Optional[dict]) -> str:
    """The samples' mean statistics, beside the held-out pieces' (saved in the checkpoint while training)."""
    if reference is None:
        return (f"  all samples: {sampled['in_key']:.0%} in key, pitch-class entropy "
                f"{sampled['pitch_class_entropy']:.2f} bits (this checkpoint holds no statistics of held-out pieces)")
    both = compare(sampled, reference)
    return (f"  samples (held-out pieces): {both['in_key']:.0%} ({both['reference_in_key']:.0%}) in key, pitch-class "
            f"entropy {both['pitch_class_entropy']:.2f} ({both['reference_pitch_class_entropy']:.2f}) bits, range "
            f"{both['pitch_range']:.1f} ({both['reference_pitch_range']:.1f}) semitones, longest repeat "
            f"{both['longest_repeat']:.1f} ({both['reference_longest_repeat']:.1f}); interval histograms differ by "
            f"{both['interval_distance']:.2f} (total variation, 0 = the same)")


def written(midi: Path, png: Path) -> str:
    wav = render_wav(midi, midi.with_suffix(".wav"))
    return ", ".join(p.name for p in (midi, png, wav) if p is not None)


def finish(out: Path) -> int:
    no_audio = audio_unavailable_reason()
    print(f"Wrote to {out}" + (f" (no WAV: {no_audio})" if no_audio else ""))
    return 0


DEFAULT_CHORD = [48, 60, 64, 67]  # C major, when no primer is given


def parse_chords(text: str) -> list[list[int]]:
    """'48,60,64,67' (one chord, as the help shows) or JSON: '[48,60,64,67]', '[[48,60],[50,62]]' -> chords."""
    text = text.strip()
    chords = json.loads(text if text.startswith("[") else f"[{text}]")
    return chords if chords and isinstance(chords[0], list) else [chords]


def main_pianoroll(argv: list[str]) -> int:
    p = common_parser("music-pianoroll", "Sample polyphonic pieces (one frame per quarter note) from a trained "
                      "music-pianoroll checkpoint. Writes .mid, .png and, with fluidsynth, .wav per piece.")
    p.add_argument("--frames", type=positive_int, default=64, help="frames (quarter notes) to generate after the primer")
    p.add_argument("--primer", default=None, help="first chord(s) as MIDI pitches: '48,60,64,67' or '[[48,60],[50,62]]' "
                   f"(default: C major {DEFAULT_CHORD})")
    args = p.parse_args(argv)
    ckpt, out = checkpoint_and_folder(args, "music-pianoroll")
    model = load_model(PianoRollModel, ckpt)
    if args.primer is None:
        print(f"No primer given: starting from a C major chord {DEFAULT_CHORD}")
    try:
        primer = pitches_to_roll(parse_chords(args.primer) if args.primer else [DEFAULT_CHORD], "--primer")
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise InputError(f"--primer {args.primer!r}: expected MIDI pitches like '48,60,64,67' ({error})") from None
    out.mkdir(parents=True, exist_ok=True)
    print(f"Sampling {args.num} pieces of {args.frames} frames from {ckpt}")
    for i, roll in enumerate(model.generate(args.num, args.frames, primer, seed=args.seed), start=1):
        stem = out / f"piece_{i:02d}"
        midi = write_roll_midi(roll, stem.with_suffix(".mid"), tempo_bpm=args.tempo)
        png = piano_roll_png(roll, stem.with_suffix(".png"), title=stem.name, lowest_pitch=LOWEST_PITCH, steps_per_quarter=1)
        print(f"  {written(midi, png)}   {int(roll.sum(1).mean() + 0.5)} notes per frame on average")
    return finish(out)
