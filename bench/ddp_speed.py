"""Training throughput of translation in 1 process against N DDP processes on this machine's CPU (never part of
`make test`): what splitting an epoch over processes costs or gains, as a ratio.

    .venv/bin/python bench/ddp_speed.py                       # 1 vs 2 processes, numbers corpus
    .venv/bin/python bench/ddp_speed.py --processes 4 -- --data.numbers_train=20000

Each run is a real `lstm-suite train translation --config configs/trainer/ddp-cpu.yaml` (test off). The
Throughput callback below counts every rank's target tokens and times the training steps of the epochs after
the first (which pays for start-up); validation runs but is not timed. On one CPU the processes share its
cores (Lightning gives each cores / N threads), so the ratio shows the cost of gradient syncs against that of
threads splitting small matrix products, not what N GPUs gain: there each process has a device of its own.
Measured here (2 cores, 8,000 sentence pairs, 3 epochs, two runs): 1 process 4,302 and 4,619 target tokens/s,
2 processes 4,527 and 5,197: ratio 1.05 and 1.13 (two 1-thread processes beat one 2-thread process a little).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]


class Throughput(Callback):
    """Writes <out>/rank<R>.json: target tokens and seconds of the training steps (forward, backward with its
    gradient sync, optimiser) of the epochs after the first; validation is not timed."""

    def __init__(self, out: str):
        self.out, self.tokens, self.seconds = Path(out), 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch > 0:
            self.seconds += time.perf_counter() - self.started
            self.tokens += int((batch.tgt[:, 1:] != 0).sum())

    def on_fit_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"tokens": self.tokens,
                                                                               "seconds": self.seconds}))


def tokens_per_second(processes: int, epochs: int, overrides: list[str], folder: Path) -> float:
    out = folder / f"p{processes}"
    callback = {"class_path": "ddp_speed.Throughput", "init_args": {"out": str(out)}}
    command = [sys.executable, "-m", "tasks", "train", "translation", "--config", str(REPO / "configs/trainer/ddp-cpu.yaml"),
               f"--trainer.devices={processes}", f"--trainer.max_epochs={epochs}", "--model.val_bleu_sentences=20",
               "--trainer.enable_progress_bar=false", "--run.test=false", "--run.wandb=off", f"--run.root={folder}/runs",
               f"--data.cache_dir={folder}/cache", *(["--trainer.strategy=auto"] if processes == 1 else []), *overrides, "--trainer.callbacks+=" + json.dumps(callback)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    return sum(r["tokens"] for r in ranks) / max(r["seconds"] for r in ranks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=2, help="DDP processes to compare with one")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    p.add_argument("overrides", nargs="*", help="more `train translation` options (after --)")
    args = p.parse_args()
    overrides = args.overrides or ["--data.numbers_train=8000", "--data.numbers_val=100", "--data.numbers_test=100"]
    with tempfile.TemporaryDirectory() as folder:
        single = tokens_per_second(1, args.epochs, overrides, Path(folder))
        several = tokens_per_second(args.processes, args.epochs, overrides, Path(folder))
    print(f"translation training, {os.cpu_count()} CPU cores: 1 process {single:,.0f} target tokens/s, "
          f"{args.processes} DDP processes {several:,.0f} tokens/s: ratio {several / single:.2f}")


if __name__ == "__main__":
    main()
