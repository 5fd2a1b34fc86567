"""`lstm-suite translate translation`: a sentence, or a whole file in batches, from a checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from tasks.common.arguments import CommandParser, output_file, positive_int, user_path
from tasks.common.checkpoints import add_checkpoint_arguments, chosen_checkpoint, load_model
from tasks.common.errors import InputError
from tasks.translation.model import TranslationModel


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="lstm-suite translate translation",
        description="Translate with a trained translation checkpoint (the tokenizer travels inside it). "
        "Give --text for one sentence, or --in FILE (one sentence per line) and --out FILE.",
    )
    add_checkpoint_arguments(p, "translation")
    p.add_argument("--text", help="a sentence to translate")
    p.add_argument("--in", dest="infile", type=user_path, help="a UTF-8 file, one sentence per line")
    p.add_argument("--out", type=user_path, help="where to write the translations of --in (default: print them)")
    p.add_argument("--beam", type=positive_int, default=None, help="beam size (default: the model's, 1 = greedy)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentences decoded together")
    return p


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    lines = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError:
                raise InputError(f"{path} line {number}: not valid UTF-8 (convert it, e.g. iconv -t UTF-8)") from None
    if not any(line.strip() for line in lines):
        raise InputError(f"{path}: empty, nothing to translate")
    return lines


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if (args.text is None) == (args.infile is None):
        raise InputError("give exactly one of --text SENTENCE or --in FILE")
    lines = [args.text] if args.text is not None else read_lines(args.infile)
    if not any(line.strip() for line in lines):
        raise InputError("--text is empty, nothing to translate")
    if args.out:
        output_file(args.out, "--out")
    ckpt = chosen_checkpoint(args, "translation")
    model = load_model(TranslationModel, ckpt)
    if model.tokenizer is None:
        raise InputError(f"checkpoint {ckpt}: holds no tokenizer (was it saved before training started?)")
    # blank lines stay blank, so line n of the output is always the translation of line n
    todo = [i for i, line in enumerate(lines) if line.strip()]
    with tqdm(total=len(todo), desc="Translating", unit="sent", disable=args.infile is None, file=sys.stderr) as bar:
        translated = model.translate([lines[i] for i in todo], beam_size=args.beam, batch_size=args.batch_size, progress=bar)
    outputs = [""] * len(lines)
    for i, text in zip(todo, translated):
        outputs[i] = text
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(outputs) + "\n", encoding="utf-8")
        print(f"Wrote {len(todo)} translations to {args.out}", file=sys.stderr)
    else:
        print("\n".join(outputs))
    return 0
