"""`lstm-suite transcribe speech`: audio files or folders -> transcripts, from a checkpoint."""
from __future__ import annotations

import argparse
import sys
import time

from tasks.common.arguments import CommandParser, positive_int, user_path
from tasks.common.checkpoints import add_checkpoint_arguments, chosen_checkpoint, load_model
from tasks.common.errors import InputError
from tasks.common.inputs import expand_inputs
from tasks.common.errors import describe_error
from tasks.speech.audio import SAMPLE_RATE, log_mel, read_audio
from tasks.speech.model import SpeechModel

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="lstm-suite transcribe speech",
        description="Transcribe audio files (any sample rate or channel count) with a trained speech checkpoint; "
        "folders are searched for .wav, .flac, .ogg and .mp3 files.",
    )
    p.add_argument("audio", nargs="+", type=user_path, help="audio files and/or folders")
    add_checkpoint_arguments(p, "speech")
    p.add_argument("--batch-size", type=positive_int, default=16, help="files transcribed together")
    p.add_argument("--decoder", choices=("greedy", "beam"),
                   help="greedy CTC, or beam search over the training transcripts' words and their n-gram LM "
                   "(default: the checkpoint's, which chose greedy if no beam setting validated at least as well)")
    p.add_argument("--beam-size", type=positive_int, help="hypotheses kept per frame (default: the checkpoint's)")
    p.add_argument("--lm-weight", type=float, help="weight of the language model (default: the checkpoint's, "
                   "chosen on validation clips after training)")
    p.add_argument("--word-score", type=float, help="added per word; above 0 favours more words (default: the "
                   "checkpoint's, chosen with the LM weight)")
    p.add_argument("--lexicon", type=user_path, help="your own flashlight lexicon (`word w o r d |` per line) "
                   "instead of the checkpoint's words")
    p.add_argument("--lm", type=user_path,
                   help="your own KenLM model (ARPA or binary) instead of the checkpoint's n-gram LM")
    p.add_argument("--verbose", action="store_true", help="also print timing and the real-time factor")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    files = expand_inputs(args.audio, AUDIO_SUFFIXES, "audio")
    ckpt = chosen_checkpoint(args, "speech")
    model = load_model(SpeechModel, ckpt)
    if model.vocab is None:
        raise InputError(f"checkpoint {ckpt}: holds no vocabulary (was it saved before training started?)")
    decoder = args.decoder or model.hparams.decoder
    if decoder == "beam":  # built now, so a missing package or file is reported before any audio is read
        model.configure_beam(beam_size=args.beam_size, lm_weight=args.lm_weight, word_score=args.word_score,
                             lexicon=args.lexicon, lm=args.lm)
    failed, audio_seconds, compute_seconds = 0, 0.0, 0.0
    for start in range(0, len(files), args.batch_size):
        batch, features = [], []
        began = time.perf_counter()
        for path in files[start : start + args.batch_size]:
            try:
                samples = read_audio(str(path))
                features.append(log_mel(samples, model.hparams.n_mels))  # refuses a clip shorter than one window
            except Exception as error:  # one bad file must not stop the others
                print(f"{path}: cannot read audio ({describe_error(error)})", file=sys.stderr)
                failed += 1
                continue
            batch.append(path)
            audio_seconds += len(samples) / SAMPLE_RATE
        texts = model.transcribe_features(features, decoder) if features else []
        compute_seconds += time.perf_counter() - began
        for path, text in zip(batch, texts):
            print(f"{path}\t{text}" if len(files) > 1 else text)
    if args.verbose and audio_seconds:
        print(f"{len(files) - failed} files, {audio_seconds:.1f} s of audio in {compute_seconds:.2f} s: "
              f"real-time factor {compute_seconds / audio_seconds:.4f}", file=sys.stderr)
    if failed == len(files):
        raise InputError("no file could be read")
    if failed:
        print(f"skipped {failed} of {len(files)} audio files (the reasons are above)", file=sys.stderr)
    return 1 if failed else 0
