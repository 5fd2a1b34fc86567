"""One task's training pipeline: examples/s end to end against the model-only step, and peak memory.

    .venv/bin/python bench/task_speed.py music                       # a line of JSON on stdout
    .venv/bin/python bench/task_speed.py speech --batches 40 --repeats 3
    .venv/bin/python bench/task_speed.py music-pianoroll --data.path=JSB_Chorales.mat   # training options too

The task trains as `make train TASK=<task>` would (its config, its data, validation, checkpoints; no wandb),
for 1 + repeats epochs. The first warms up (caches, allocator, first calls); each later one is timed from its
start to the next one's, validation and checkpoint writing included: **end to end**. Epochs longer than
--batches are cut to that many training batches, and validation to the same share of its batches; the figure
is then that of a whole epoch: the training and validation parts scaled up to their whole size, and what an
epoch pays once (checkpoints, epoch-end hooks) counted once.

Then the batches of the first timed epoch (saved to disk as they went by, that time left out of the clock,
so that holding them does not count as the task's memory) are loaded into memory and go through the same
training step again (forward, backward, optimiser) with nothing else: no loading, validation, logging or
checkpoints: **model only**. The ratio of the two is the pipeline's efficiency: the share of training time
the model itself gets. Peak resident memory is this process's during training (and, when the task has loader
workers, the largest worker's).

bench/suite.py (`make bench`) runs this for every task, each in a process of its own.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch import Callback, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import task_inference  # noqa: E402
from tasks.common.training import SuiteCLI  # noqa: E402
from tasks.registry import get_task  # noqa: E402


def examples_in(batch) -> int:
    """Examples in a batch: the first field's leading size; forecast's step is a list of (inputs, targets)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, list) and batch and isinstance(batch[0], (tuple, list)):
        return sum(examples_in(part) for part in batch)
    return examples_in(batch[0])


@dataclass
class Epoch:
    """One timed epoch, in seconds: its training batches (loading, step, hooks, logging), its validation, and the
    rest (checkpoints, epoch-end hooks: once per epoch, however long)."""

    training: float = 0.0
    validation: float = 0.0
    rest: float = 0.0
    examples: int = 0
    batches: int = 0
    val_batches: int = 0

    def parts(self, batches: int, val_batches: int) -> tuple[float, float, float]:
        """Seconds of a whole epoch of `batches` training and `val_batches` validation batches, in its three parts."""
        return (self.training * batches / self.batches, self.validation * val_batches / max(self.val_batches, 1),
                self.rest)

    def rate(self, batches: int, val_batches: int) -> float:
        """Examples/s of such a whole epoch."""
        return self.examples * batches / self.batches / sum(self.parts(batches, val_batches))


def shares(epochs: list[Epoch], batches: int, val_batches: int, model_rate: float) -> dict:
    """Where a whole epoch's time goes (fractions, from the epoch of median speed): the model's own steps (at the
    model-only rate), the rest of the training loop ("loop": loading, hooks, logging), validation, and "epoch
    end" (checkpoints, epoch-end hooks)."""
    epoch = sorted(epochs, key=lambda e: e.rate(batches, val_batches))[len(epochs) // 2]
    training, validation, rest = epoch.parts(batches, val_batches)
    total, model = training + validation + rest, epoch.examples * batches / epoch.batches / model_rate
    return {"model": model / total, "loop": (training - model) / total,
            "validation": validation / total, "epoch end": rest / total}


class EpochClock(Callback):
    """Times every training epoch after the first (see Epoch); saves the first one's batches into `keep_in`."""

    def __init__(self, keep_in: Optional[Path] = None):
        self.keep_in = keep_in
        self.epochs: list[Epoch] = []
        self.kept: list[Path] = []
        self.kept_types: set[type] = set()  # the batches' classes, which loading them with weights_only allows
        self.threads = torch.get_num_threads()
        self._epoch: Optional[Epoch] = None
        self._mark = 0.0

    def _elapsed(self) -> float:
        """Seconds since the last mark, and a new mark."""
        now = time.perf_counter()
        elapsed, self._mark = now - self._mark, now
        return elapsed

    def _close(self) -> None:
        if self._epoch is not None:
            self._epoch.rest += self._elapsed()
            self.epochs.append(self._epoch)
            self._epoch = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._close()
        if trainer.current_epoch >= 1:
            self._epoch = Epoch()
            self._elapsed()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.threads = torch.get_num_threads()  # what the task trains with (forecast sets its own)
        if self._epoch is not None and self.keep_in is not None and len(self.epochs) == 0:
            start = time.perf_counter()
            self.kept.append(self.keep_in / f"{batch_idx}.pt")
            torch.save(batch, self.kept[-1])  # before the step: a step may change its batch in place
            self.kept_types.add(type(batch))
            self._mark += time.perf_counter() - start  # not the task's time

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._epoch is not None:
            self._epoch.examples += examples_in(batch)
            self._epoch.batches += 1

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._epoch is not None:
            self._epoch.training += self._elapsed()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._epoch is not None:
            self._epoch.val_batches += 1

    def on_validation_end(self, trainer, pl_module) -> None:  # before ModelCheckpoint's: checkpoints are "rest"
        if self._epoch is not None:
            self._epoch.validation += self._elapsed()

    def on_fit_end(self, trainer, pl_module) -> None:
        self._close()


class InMemory:
    """Batches already collated and on the device, served as an epoch: a loader that costs nothing."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def rates(epochs: list[Epoch], batches: Optional[int] = None, val_batches: Optional[int] = None) -> dict:
    """Median and range of examples/s over the epochs, each as a whole epoch of batches (default: as run)."""
    values = sorted(e.rate(batches or e.batches, val_batches if val_batches is not None else e.val_batches)
                    for e in epochs)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "runs": len(values)}


def peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, workers) / 1024  # Linux reports KiB


def end_to_end(task_name: str, batches: int, repeats: int, folder: str, extra: list[str]):
    """Train 1 + repeats (cut) epochs as `make train` would -> (cli, EpochClock, batch limits)."""
    args = [f"--run.root={folder}", "--run.name=bench", "--run.wandb=off", "--run.test=false",
            f"--trainer.max_epochs={1 + repeats}", "--trainer.max_time=null", "--trainer.enable_progress_bar=false", *extra]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = SuiteCLI(get_task(task_name), args)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    data.prepare_data()
    data.setup("fit")
    train_batches, val_batches = len(data.train_dataloader()), len(data.val_dataloader())
    if train_batches > batches:  # a cut epoch keeps validation's share of it
        trainer.limit_train_batches = batches
        trainer.limit_val_batches = max(1, math.ceil(val_batches * batches / train_batches))
    clock = EpochClock(keep_in=Path(folder, "batches"))
    clock.keep_in.mkdir()
    trainer.callbacks.insert(0, clock)
    torch.set_flush_denormal(True)  # as tasks.common.training.train does
    trainer.fit(model, datamodule=data)
    limits = {"timed_batches": min(train_batches, batches), "epoch_batches": train_batches,
              "epoch_val_batches": val_batches}
    return cli, clock, limits


def without_schedulers(model) -> None:
    """Let the model's configure_optimizers give its optimiser alone: a plateau schedule waits on a validation
    metric that a model-only run has none of (a scheduler's step costs next to nothing)."""
    configure = model.configure_optimizers

    def optimiser_only():
        config = configure()
        if isinstance(config, dict):
            return config["optimizer"]
        if isinstance(config, (tuple, list)) and len(config) == 2 and isinstance(config[1], (tuple, list)):
            return config[0]  # ([optimisers], [schedulers])
        return config

    model.configure_optimizers = optimiser_only


def load_batches(clock: EpochClock) -> list:
    with torch.serialization.safe_globals(list(clock.kept_types)):
        return [torch.load(path, weights_only=True) for path in clock.kept]


def model_only(cli, batches: list, repeats: int, threads: int) -> dict:
    """The same training step over batches already in memory, in a Trainer with nothing else switched on, with
    as many threads as the task trained with."""
    config = cli.config_init["trainer"]
    clock = EpochClock()
    trainer = Trainer(accelerator=config.get("accelerator", "auto"), devices=1, precision=config.get("precision"),
                      gradient_clip_val=config.get("gradient_clip_val"), max_epochs=1 + repeats, limit_val_batches=0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=[clock])
    without_schedulers(cli.model)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(cli.model, train_dataloaders=InMemory(batches))
    torch.set_num_threads(before)
    return rates(clock.epochs)  # (the first epoch, untimed, warms up the new optimiser)


def measure(task_name: str, batches: int, repeats: int, extra: list[str]) -> dict:
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="lstm-suite-bench-") as folder:
        cli, clock, limits = end_to_end(task_name, batches, repeats, folder, extra)
        full = rates(clock.epochs, limits["epoch_batches"], limits["epoch_val_batches"])
        peak = peak_rss_mib()  # training's, before anything else is held
        inference = task_inference.measure(task_name, cli.model, cli.datamodule)  # attached as after training
        bare = model_only(cli, load_batches(clock), repeats, clock.threads)
    efficiency = full["median"] / bare["median"]
    split = shares(clock.epochs, limits["epoch_batches"], limits["epoch_val_batches"], bare["median"])
    return {"task": task_name, "end_to_end": full, "model_only": bare, "efficiency": efficiency, "shares": split,
            "peak_rss_mib": peak, "limits": limits, "inference": inference,
            "threads": torch.get_num_threads(), "seconds": time.time() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a task name (lstm-suite train --help lists them)")
    parser.add_argument("--batches", type=int, default=30, help="training batches per timed epoch at most")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs after the warm-up one")
    args, overrides = parser.parse_known_args(argv)  # the rest are training options, e.g. --data.path=...
    result = measure(args.task, args.batches, args.repeats, [o for o in overrides if o != "--"])
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
