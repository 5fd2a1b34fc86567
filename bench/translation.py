"""Translation speed and quality, printed as numbers (never part of `make test`).

    # training throughput (target tokens per second) and beam-5 decoding (sentences per second)
    .venv/bin/python bench/translation.py speed --config configs/translation-multi30k.yaml --data.path=DIR
    # quality of a checkpoint on a parallel pair of files: sacreBLEU and chrF with beam 5
    .venv/bin/python bench/translation.py score --ckpt runs/translation/<run>/checkpoints/best.ckpt \
        --src DIR/val.en --ref DIR/val.fr
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import sacrebleu
import torch

from tasks.common.checkpoints import load_model
from tasks.common.training import SuiteCLI
from tasks.registry import get_task
from tasks.translation.model import TranslationModel
from tasks.translation.translate import read_lines


def speed(overrides: list[str], steps: int, warmup: int, sentences: int, beam: int) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = SuiteCLI(get_task("translation"), [*overrides, "--run.wandb=off", "--run.root=runs/bench"])
    model, data = cli.model, cli.datamodule
    data.prepare_data()
    data.setup()
    model.tokenizer = data.tokenizer
    optimizer = model.configure_optimizers()["optimizer"]
    model.train()
    batches = iter(data.train_dataloader())
    tokens, seconds = 0, 0.0
    for step in range(warmup + steps):
        batch = next(batches)
        start = time.perf_counter()
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= warmup:  # the first steps pay for allocation and warm caches
            seconds += time.perf_counter() - start
            tokens += int((batch.tgt[:, 1:] != 0).sum())
    print(f"training: {tokens / seconds:,.0f} target tokens/s over {steps} steps "
          f"(batch {data.hparams.batch_size}, {torch.get_num_threads()} threads)")
    sources = [s for s, _ in data.pairs["val"][:sentences]]
    start = time.perf_counter()
    model.translate(sources, beam_size=beam)
    print(f"decoding: {len(sources) / (time.perf_counter() - start):,.1f} sentences/s with beam {beam} "
          f"({len(sources)} validation sentences, batches of 64)")


def score(ckpt: str, src: str, ref: str, beam: int) -> None:
    model = load_model(TranslationModel, ckpt)
    sources, references = read_lines(Path(src)), read_lines(Path(ref))
    start = time.perf_counter()
    hypotheses = model.translate(sources, beam_size=beam)
    elapsed = time.perf_counter() - start
    bleu = sacrebleu.corpus_bleu(hypotheses, [references])
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    print(f"{src} -> {ref}: BLEU {bleu.score:.1f}, chrF {chrf.score:.1f} (beam {beam}, {len(sources)} sentences, "
          f"{len(sources) / elapsed:.1f} sentences/s)\n  {bleu}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed", help="training tokens/s and beam-search sentences/s")
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--sentences", type=int, default=500)
    s.add_argument("--beam", type=int, default=5)
    q = sub.add_parser("score", help="BLEU and chrF of a checkpoint on a parallel file pair")
    q.add_argument("--ckpt", required=True)
    q.add_argument("--src", required=True)
    q.add_argument("--ref", required=True)
    q.add_argument("--beam", type=int, default=5)
    args, overrides = p.parse_known_args()
    if args.command == "speed":
        speed(overrides, args.steps, args.warmup, args.sentences, args.beam)
    else:
        score(args.ckpt, args.src, args.ref, args.beam)


if __name__ == "__main__":
    sys.exit(main())
