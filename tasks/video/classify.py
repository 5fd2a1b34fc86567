"""`lstm-suite classify video`: video files or folders -> the most likely classes, from a checkpoint."""
from __future__ import annotations

import argparse
import sys

from tasks.common.arguments import CommandParser, positive_int, user_path
from tasks.common.checkpoints import add_checkpoint_arguments, chosen_checkpoint, load_model
from tasks.common.errors import InputError
from tasks.common.inputs import expand_inputs
from tasks.video.clips import VIDEO_SUFFIXES
from tasks.video.decode import decode_clip
from tasks.video.model import VideoModel


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="lstm-suite classify video",
        description="Classify video files with a trained video checkpoint: prints the top classes of each with "
        f"their probabilities. Folders are searched for {', '.join(VIDEO_SUFFIXES)} files.",
    )
    p.add_argument("video", nargs="+", type=user_path, help="video files and/or folders")
    add_checkpoint_arguments(p, "video")
    p.add_argument("--top", type=positive_int, default=5, help="classes printed per video")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    files = expand_inputs(args.video, VIDEO_SUFFIXES, "video")
    model = load_model(VideoModel, chosen_checkpoint(args, "video"))
    h, names = model.hparams, model.class_names
    failed = 0
    for path in files:
        try:
            clip = decode_clip(path, frames=h.cache_frames, height=h.height, width=h.width, fps=h.get("cache_fps"))
        except Exception as error:  # one bad file must not stop the others
            print(f"{path}: cannot read video ({type(error).__name__}: {error})", file=sys.stderr)
            failed += 1
            continue
        probabilities = model.probabilities([clip])[0]
        top = probabilities.topk(min(args.top, len(names)))
        width = max(len(names[i]) for i in top.indices.tolist())
        print(path)
        for p, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f"  {names[i] + ':':<{width + 1}} {p:.3f}")
    if failed == len(files):
        raise InputError("no file could be read")
    return 1 if failed else 0
