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

Every timed epoch's batches are saved to disk as they go by (that time left out of the clock, and out of the
task's memory), then loaded and put through the same training steps again (forward, backward, optimiser) with
nothing else: no loading, validation, logging or checkpoints: **model only**. The two, epoch by epoch on the
same batches, give the pipeline's efficiency (the share of training time the model itself gets, as a median
of the paired epochs) and where the rest goes: waiting for batches, the steps' hooks and logging, validation,
epoch end. Peak resident memory is this process's during training (and, when the task has loader workers,
the largest worker's).

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
    """One timed epoch, in seconds: its training part (waiting for each batch: "loading"; the steps with their
    hooks and logging), its validation, and the rest (checkpoints, epoch-end hooks: once per epoch, however long)."""

    loading: float = 0.0
    steps: float = 0.0
    validation: float = 0.0
    rest: float = 0.0
    examples: int = 0
    batches: int = 0
    val_batches: int = 0

    def parts(self, batches: int, val_batches: int) -> tuple[float, float, float, float]:
        """Seconds of a whole epoch of `batches` training and `val_batches` validation batches: loading, steps,
        validation, rest."""
        scale = batches / max(self.batches, 1)
        return self.loading * scale, self.steps * scale, self.validation * val_batches / max(self.val_batches, 1), self.rest

    def rate(self, batches: Optional[int] = None, val_batches: Optional[int] = None) -> float:
        """Examples/s of such a whole epoch (default: as run)."""
        batches = batches or self.batches
        val_batches = self.val_batches if val_batches is None else val_batches
        return self.examples * batches / max(self.batches, 1) / sum(self.parts(batches, val_batches))


def rates(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "runs": len(values)}


def shares(epoch: Epoch, model: Epoch, batches: int, val_batches: int) -> dict:
    """Where a whole epoch's time goes (fractions): the model's own steps (as timed on the same batches alone),
    waiting for batches ("loading"), "step overhead" (what the same steps took in training beyond the model alone:
    hooks, logging, and loader worker processes competing with the step for the cores), validation, and "epoch
    end" (checkpoints, epoch-end hooks). Shares slightly below 0 are timing noise."""
    loading, steps, validation, rest = epoch.parts(batches, val_batches)
    total, alone = loading + steps + validation + rest, steps * model.steps / epoch.steps
    return {"model": alone / total, "loading": loading / total, "step overhead": (steps - alone) / total,
            "validation": validation / total, "epoch end": rest / total}


class EpochClock(Callback):
    """Times every training epoch after the first (see Epoch); with `keep_in`, saves each timed epoch's batches
    there (that time left out of the clock)."""

    def __init__(self, keep_in: Optional[Path] = None):
        self.keep_in = keep_in
        self.epochs: list[Epoch] = []
        self.kept: list[list[Path]] = []  # per timed epoch, its batches' files
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
            self.kept.append([])
            self._elapsed()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.threads = torch.get_num_threads()  # what the task trains with (forecast sets its own)
        if self._epoch is None:
            return
        self._epoch.loading += self._elapsed()
        if self.keep_in is not None:
            self.kept[-1].append(self.keep_in / f"{len(self.epochs)}-{batch_idx}.pt")
            torch.save(batch, self.kept[-1][-1])  # before the step: a step may change its batch in place
            self.kept_types.add(type(batch))
            self._elapsed()  # not the task's time

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._epoch is not None:
            self._epoch.steps += self._elapsed()
            self._epoch.examples += examples_in(batch)
            self._epoch.batches += 1

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._epoch is not None:
            self._epoch.rest += self._elapsed()  # after the last batch: epoch-end work before validation

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._epoch is not None:
            self._epoch.val_batches += 1

    def on_validation_end(self, trainer, pl_module) -> None:  # before ModelCheckpoint's: checkpoints are "rest"
        if self._epoch is not None:
            self._epoch.validation += self._elapsed()

    def on_fit_end(self, trainer, pl_module) -> None:
        self._close()


class EpochsInMemory:
    """Batches already collated and on the device, a list per epoch, served in turn (the first twice: once to
    warm up): a loader that costs nothing. Which epoch is the trainer's: Lightning may start an iterator more
    than once per epoch."""

    def __init__(self, epochs: list[list], trainer: Trainer):
        self.epochs, self.trainer = [epochs[0], *epochs], trainer

    def _current(self) -> list:
        return self.epochs[min(self.trainer.current_epoch, len(self.epochs) - 1)]

    def __iter__(self):
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


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


def load_batches(clock: EpochClock) -> list[list]:
    with torch.serialization.safe_globals(list(clock.kept_types)):
        return [[torch.load(path, weights_only=True) for path in epoch] for epoch in clock.kept]


def model_only(cli, epochs: list[list], threads: int) -> list[Epoch]:
    """The same training steps over each timed epoch's batches, already in memory, in a Trainer with nothing else
    switched on, with as many threads as the task trained with."""
    config = cli.config_init["trainer"]
    clock = EpochClock()
    trainer = Trainer(accelerator=config.get("accelerator", "auto"), devices=1, precision=config.get("precision"),
                      gradient_clip_val=config.get("gradient_clip_val"), max_epochs=1 + len(epochs), limit_val_batches=0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=[clock])
    without_schedulers(cli.model)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(cli.model, train_dataloaders=EpochsInMemory(epochs, trainer))
    torch.set_num_threads(before)
    return clock.epochs  # (the first epoch, untimed, warms up the new optimiser)


def measure(task_name: str, batches: int, repeats: int, extra: list[str]) -> dict:
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="lstm-suite-bench-") as folder:
        cli, clock, limits = end_to_end(task_name, batches, repeats, folder, extra)
        peak = peak_rss_mib()  # training's, before anything else is held
        inference = task_inference.measure(task_name, cli.model, cli.datamodule)  # attached as after training
        alone = model_only(cli, load_batches(clock), clock.threads)
    whole = (limits["epoch_batches"], limits["epoch_val_batches"])
    full = [epoch.rate(*whole) for epoch in clock.epochs]
    efficiency = [f / a.rate() for f, a in zip(full, alone)]  # paired: the same batches
    median = sorted(range(len(full)), key=lambda i: efficiency[i])[len(full) // 2]
    split = shares(clock.epochs[median], alone[median], *whole)
    return {"task": task_name, "end_to_end": rates(full), "model_only": rates([a.rate() for a in alone]),
            "efficiency": statistics.median(efficiency), "efficiency_range": [min(efficiency), max(efficiency)],
            "shares": split,
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
