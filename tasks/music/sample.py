"""`lstm-suite sample music`: melodies from a checkpoint, as MIDI, piano-roll PNG and (with fluidsynth) WAV."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tasks.common.checkpoints import load_model, newest_checkpoint
from tasks.common.errors import InputError
from tasks.music.encoding import STEPS_PER_QUARTER, parse_primer, read_melody, write_midi
from tasks.music.melody_model import MelodyModel
from tasks.music.metrics import describe
from tasks.music.render import audio_unavailable_reason, melody_roll, piano_roll_png, render_wav


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstm-suite sample music",
        description="Sample melodies from a trained music checkpoint. Writes one .mid, one piano-roll .png "
        "and, when fluidsynth is installed, one .wav per melody, and prints what it wrote.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ckpt", help="checkpoint to sample from (default: best.ckpt of the newest music run)")
    p.add_argument("--runs-root", default="runs", help="where to look for the newest run")
    p.add_argument("--num", type=int, default=4, help="number of melodies")
    p.add_argument("--length", type=int, default=128, help="events to generate per melody, in 16th notes (128 = 8 bars of 4/4)")
    p.add_argument("--temperature", type=float, default=1.0, help="<1 plays safer, >1 takes more risks")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k likeliest events (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="sample only from the smallest set with this probability")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest event (one melody per primer)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible samples")
    p.add_argument("--primer", default=None,
                   help="how melodies begin: a MIDI/MusicXML file, or events like '[60, -2, 62, -2]' (pitch, -1 note off, -2 hold)")
    p.add_argument("--tempo", type=float, default=100.0, help="tempo of the written MIDI, quarter notes per minute")
    p.add_argument("--out", default=None, help="output folder (default: <run>/samples/<time>)")
    return p


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
    if args.num < 1 or args.length < 1:
        raise InputError(f"--num and --length must be at least 1, got {args.num} and {args.length}")
    ckpt = Path(args.ckpt) if args.ckpt else newest_checkpoint("music", args.runs_root)
    model = load_model(MelodyModel, ckpt)
    primer = load_primer(args.primer)
    try:
        melodies = model.generate(args.num, args.length, primer=primer, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, seed=args.seed, greedy_decoding=args.greedy)
    except ValueError as error:
        raise InputError(str(error)) from None
    out = Path(args.out) if args.out else ckpt.parent.parent / "samples" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    no_audio = audio_unavailable_reason()
    print(f"Sampling {args.num} melodies of {args.length} 16ths from {ckpt}"
          + (f" after a {len(primer)}-event primer" if primer else " from the start of a piece"))
    for i, events in enumerate(melodies, start=1):
        stem = out / f"melody_{i:02d}"
        midi = write_midi(events, stem.with_suffix(".mid"), tempo_bpm=args.tempo)
        png = piano_roll_png(melody_roll(events), stem.with_suffix(".png"), title=f"{stem.name} ({ckpt.name})",
                             steps_per_quarter=STEPS_PER_QUARTER)
        wav = render_wav(midi, stem.with_suffix(".wav"))
        stats = describe(events)
        written = ", ".join(p.name for p in (midi, png, wav) if p is not None)
        print(f"  {written}   range {stats['pitch_range']} semitones, {stats['in_key']:.0%} in key, "
              f"longest repeat {stats['longest_repeat']}")
    print(f"Wrote to {out}" + (f" (no WAV: {no_audio})" if no_audio else ""))
    return 0
