"""Is the video loader the bottleneck? Clips per second decoded (cold), loaded from the frame cache, and
consumed by the training step, printed as numbers (never part of `make test`).

    .venv/bin/python bench/video_loader.py                                  # the default synthetic corpus
    .venv/bin/python bench/video_loader.py --config configs/video-ucf101.yaml --data.root=DIR --data.splits_dir=DIR2

Options other than --clips / --batches / --steps are the `lstm-suite train video` ones. Cold decoding runs into a
fresh temporary cache, with the prepare_workers processes training would use; loading runs the training
DataLoader (its num_workers, persistent) over `--batches` batches twice and times the second pass, as every
epoch after the first one sees it; the training step is forward, backward and AdamW on batches already in memory.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from functools import partial

import torch

from tasks.common.training import SuiteCLI
from tasks.common.workers import run_on_files
from tasks.registry import get_task
from tasks.video.decode import cache_clip


def decode_rate(paths: list[str], data, workers: int) -> float:
    h = data.hparams
    with tempfile.TemporaryDirectory() as folder:
        decode = partial(cache_clip, folder=folder, frames=h.cache_frames, height=h.height, width=h.width)
        start = time.perf_counter()
        results, _ = run_on_files(decode, paths, desc=f"Decoding {len(paths)} clips (cold, {workers or 'all'} workers)",
                                 workers=workers)
        return len(results) / (time.perf_counter() - start)


def load_rate(loader, batches: int) -> float:
    clips, seconds = 0, 0.0
    for epoch in range(2):  # the first pass pays for starting the workers
        start, clips = time.perf_counter(), 0
        for n, batch in enumerate(loader):
            clips += len(batch.labels)
            if n + 1 == batches:
                break
        seconds = time.perf_counter() - start
    return clips / seconds


def train_rate(model, batches: list, steps: int) -> float:
    optimizer = model.configure_optimizers()["optimizer"]
    model.train()
    clips, seconds = 0, 0.0
    for step in range(steps + 2):
        batch = batches[step % len(batches)]
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch.frames), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:  # the first steps pay for allocation
            seconds += time.perf_counter() - start
            clips += len(batch.labels)
    return clips / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=1000, help="clips decoded cold (starting the processes is included)")
    p.add_argument("--batches", type=int, default=30, help="batches loaded from the cache per pass")
    p.add_argument("--steps", type=int, default=15, help="training steps timed")
    args, overrides = p.parse_known_args()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = SuiteCLI(get_task("video"), [*overrides, "--run.wandb=off", "--run.root=runs/bench"])
    model, data = cli.model, cli.datamodule
    data.prepare_data()
    data.setup()
    h = data.hparams
    paths = [str(c.path) for c in data.clips["train"][: args.clips]]
    print(f"{data.describe()}: {h.cache_frames} frames of {h.height}x{h.width} cached per clip; the model sees "
          f"{h.frames} of {h.crop}x{h.crop}; batch {h.batch_size}; {torch.get_num_threads()} torch threads")
    one = decode_rate(paths[: max(1, args.clips // 4)], data, workers=1)
    cold = decode_rate(paths, data, workers=h.prepare_workers)
    loader = data.train_dataloader()
    cached = load_rate(loader, args.batches)
    batches = [batch for _, batch in zip(range(4), loader)]
    trained = train_rate(model, batches, args.steps)
    print(f"decoding (cold, 1 process):          {one:8.1f} clips/s")
    print(f"decoding (cold, prepare_workers={h.prepare_workers}):  {cold:8.1f} clips/s   (once per clip, in prepare_data)")
    print(f"loading from the cache ({h.num_workers} workers):   {cached:8.1f} clips/s   (every epoch)")
    print(f"training step:                       {trained:8.1f} clips/s")
    verdict = "is not" if cached > trained else "IS"
    print(f"the loader {verdict} the bottleneck after the first epoch: it delivers {cached / trained:.1f}x what "
          f"training consumes")


if __name__ == "__main__":
    main()
