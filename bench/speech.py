"""Speech speed and accuracy, printed as numbers (never part of `make test`).

    # training throughput (utterances and audio seconds per second) of the default model on the default corpus
    .venv/bin/python bench/speech.py train
    # real-time factor of transcription (target <= 0.05 on 2 cores) and WER/CER of a checkpoint, greedy and beam,
    # on the held-out voices of the default corpus (or any manifest with --manifest)
    .venv/bin/python bench/speech.py transcribe --ckpt runs/speech/<run>/checkpoints/best.ckpt
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate

from tasks.common.checkpoints import load_model, newest_checkpoint
from tasks.common.training import SuiteCLI
from tasks.registry import get_task
from tasks.speech.audio import SAMPLE_RATE, log_mel, read_audio
from tasks.speech.corpus import read_manifest
from tasks.speech.model import SpeechModel

RTF_TARGET = 0.05


def default_setup(overrides: list[str]):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = SuiteCLI(get_task("speech"), [*overrides, "--run.wandb=off", "--run.root=runs/bench"])
    cli.datamodule.prepare_data()
    cli.datamodule.setup()
    return cli.model, cli.datamodule


def train_speed(overrides: list[str], steps: int, warmup: int) -> None:
    model, data = default_setup(overrides)
    optimizer = model.configure_optimizers()["optimizer"]
    model.train()
    batches = iter(data.train_dataloader())
    utterances, audio_seconds, seconds = 0, 0.0, 0.0
    for step in range(warmup + steps):
        batch = next(batches)  # SpecAugment and padding happen here, outside the timed step, as in a worker
        start = time.perf_counter()
        loss, _, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step >= warmup:  # the first steps pay for allocation
            seconds += time.perf_counter() - start
            utterances += len(batch.index)
            audio_seconds += float(batch.feature_lengths.sum()) / (SAMPLE_RATE / 160)
    epoch = len(data.utterances["train"]) / (utterances / seconds)
    print(f"training: {utterances / seconds:.1f} utterances/s, {audio_seconds / seconds:.1f} s of audio per second, "
          f"{steps} steps of batch {data.hparams.batch_size} ({torch.get_num_threads()} threads); "
          f"an epoch of {len(data.utterances['train'])} utterances takes {epoch:.0f} s")


def transcribe_speed(ckpt: str, manifest: str | None, limit: int, batch_size: int) -> None:
    model = load_model(SpeechModel, ckpt)
    if manifest is None:
        _, data = default_setup([])
        manifest = str(data.manifests()["test"])
    rows = read_manifest(manifest)[:limit]
    references = [" ".join(r.text.lower().split()) for r in rows]
    audio = [read_audio(r.audio) for r in rows]
    audio_seconds = sum(len(a) for a in audio) / SAMPLE_RATE
    print(f"{len(rows)} clips, {audio_seconds:.0f} s of audio from {manifest}; checkpoint {ckpt}")
    for decoder in ("greedy", "beam"):
        for size in (1, batch_size):
            start = time.perf_counter()
            texts = []
            for i in range(0, len(audio), size):  # features included: what `transcribe` does per file
                texts += model.transcribe_features([log_mel(a, model.hparams.n_mels) for a in audio[i : i + size]],
                                                   decoder)
            rtf = (time.perf_counter() - start) / audio_seconds
            print(f"  {decoder:6s} batch {size:3d}: real-time factor {rtf:.4f} ({rtf / RTF_TARGET:.2f} of the "
                  f"{RTF_TARGET} target)   WER {float(word_error_rate(texts, references)):.2%}  "
                  f"CER {float(char_error_rate(texts, references)):.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="training utterances per second of the default model")
    train.add_argument("--steps", type=int, default=30)
    train.add_argument("--warmup", type=int, default=3)
    transcribe = commands.add_parser("transcribe", help="real-time factor and WER of a checkpoint")
    transcribe.add_argument("--ckpt", help="default: best.ckpt of the newest speech run")
    transcribe.add_argument("--manifest", help="default: the test split (held-out voices) of the default corpus")
    transcribe.add_argument("--limit", type=int, default=300, help="clips to transcribe")
    transcribe.add_argument("--batch-size", type=int, default=16)
    args, overrides = parser.parse_known_args()
    if args.command == "train":
        train_speed(overrides, args.steps, args.warmup)
    else:
        transcribe_speed(args.ckpt or str(newest_checkpoint("speech")), args.manifest, args.limit, args.batch_size)


if __name__ == "__main__":
    main()
