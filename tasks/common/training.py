"""`lstm-suite train TASK`: LightningCLI over the task's model and data, in a run folder of its own."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

from tasks.common.atomic import save_atomic
from tasks.common.distributed import RankZeroCheckpointIO
from tasks.common.errors import InputError
from tasks.common.launching import launched_as_rank_zero, launcher_topology
from tasks.common.logging import check_wandb_login, finish, make_logger, resolve_wandb_mode, wandb_run_dir
from tasks.common.memory import keep_freed_memory
from tasks.common.resuming import (CONFIG, ResumeState, check_fits, check_training_checkpoint, resume_arguments,
                                   split_resume, wandb_run_id)
from tasks.common.task import Task, config_path


@dataclass
class RunOptions:
    """Where a run writes and how it is logged.

    Args:
        root: run folders are <root>/<task>/<name>; checkpoints go to its checkpoints/ folder.
        name: the run folder's name (default: the start time, e.g. 20261126-142501).
        wandb: auto (online when logged in or WANDB_API_KEY is set, else offline), online, offline,
            or off (CSV logs only).
        wandb_project: the Weights & Biases project.
        test: evaluate the best checkpoint on the test split after training.
        resume: a run folder (or one of its checkpoints) to continue: it goes on in that folder with the run's
            saved config (options given now override it), best score and wandb run.
        last_every_n_steps: also write checkpoints/last.ckpt every this many optimiser steps, within
            epochs (it is written after every epoch regardless); for long epochs.
    """

    root: str = "runs"
    name: Optional[str] = None
    wandb: Literal["auto", "online", "offline", "off"] = "auto"
    wandb_project: str = "lstm-suite"
    test: bool = True
    resume: Optional[str] = None
    last_every_n_steps: Optional[int] = None


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Optional[Path]
    last_checkpoint: Optional[Path]
    metrics: dict[str, float]
    trainer: Trainer
    wandb_dir: Optional[Path]


class SaveOnException(Callback):
    """Ctrl-C or a crash mid-epoch keeps the work done so far in checkpoints/interrupted.ckpt.

    Rank 0 writes it alone, with no barrier: when another process has crashed, a barrier (which
    trainer.save_checkpoint ends with) would wait for it forever. (Lightning's OnExceptionCheckpoint
    would also make every plain fit() resume from "last".)
    """

    def __init__(self, path: Path):
        self.path = path

    def on_exception(self, trainer: Trainer, pl_module, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or trainer.global_step == 0 or not trainer.is_global_zero:
            return
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)  # save_checkpoint minus its barrier
        trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.path)
        print(f"\nSaved the interrupted run to {self.path}; continue with --run.resume={self.path}", flush=True)


def make_run_folder(path: Path, reuse: bool) -> Path:
    """Create the run folder; a timestamped one that exists already (two runs started in the same second)
    gets a suffix instead of being shared."""
    if reuse:
        path.mkdir(parents=True, exist_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()  # atomic: exactly one run gets each name
            return candidate
        except FileExistsError:
            continue
    raise InputError(f"{path}: too many runs started in the same second; pass --run.name")


class SaveRunConfig(SaveConfigCallback):
    """config.yaml in the run folder, whichever logger is used: what --run.resume reads."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / CONFIG
            save_atomic(path, lambda file: file.write(self.parser.dump(self.config, skip_none=False).encode()))


def last_checkpoints(folder: Path, every_n_steps: Optional[int]) -> list[ModelCheckpoint]:
    """checkpoints/last.ckpt after every epoch (and every n steps). A callback of its own: with save_last=True,
    Lightning's best-checkpoint callback writes "last" only when it also writes a new best."""
    def last(**when) -> ModelCheckpoint:
        return ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False, **when)

    return [last(every_n_epochs=1)] + ([last(every_n_train_steps=every_n_steps)] if every_n_steps else [])


class RunFolder(Callback):
    """One run folder for every process of a training: rank 0's. Each process names one when it starts (the
    processes of several nodes may start seconds apart); at setup all of them take rank 0's name."""

    def __init__(self, path: Path):
        self.path = path

    def setup(self, trainer: Trainer, pl_module, stage: str) -> None:
        self.path = Path(trainer.strategy.broadcast(str(self.path)))
        trainer._default_root_dir = str(self.path)  # (Trainer has no setter) what rank-0-only writers use


class SuiteCLI(LightningCLI):
    """LightningCLI for one task: its YAML as defaults, links between data and model, our run folder."""

    def __init__(self, task: Task, args: list[str]):
        self.task = task
        keep_freed_memory()  # before anything large is allocated: no page-fault storm between steps
        super().__init__(
            task.model,
            task.data,
            args=args,
            run=False,
            seed_everything_default=1234,
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
            parser_kwargs={
                "default_config_files": [str(config_path(task))],
                "prog": f"lstm-suite train {task.name}",
                "description": f"Train {task.name}: {task.summary}. Defaults come from {config_path(task)}; "
                "override any value with --section.key=value or add --config more.yaml.",
            },
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        for source, target in self.task.links:
            parser.link_arguments(source, target, apply_on="instantiate")
        for source, target in self.task.parse_links:
            parser.link_arguments(source, target, apply_on="parse")

    def instantiate_trainer(self, **kwargs) -> Trainer:
        run: RunOptions = self.config_init["run"]
        refuse_automatic_options(self.task, self.model, self.config_init["trainer"])
        if run.last_every_n_steps is not None and run.last_every_n_steps < 1:
            raise InputError(f"--run.last_every_n_steps must be at least 1, got {run.last_every_n_steps}")
        check_wandb_login(run.wandb)  # before the run folder exists: a refused run leaves nothing behind
        self.run_dir = Path(run.root).expanduser() / self.task.name / (run.name or time.strftime("%Y%m%d-%H%M%S"))
        if launched_as_rank_zero():  # the other processes write nothing of their own (see RunFolder)
            self.run_dir = make_run_folder(self.run_dir, reuse=run.name is not None)
        name = self.run_dir.name
        trainer_config = self.config_init["trainer"]
        callbacks = list(trainer_config.get("callbacks") or [])
        checkpoints = self.run_dir / "checkpoints"
        self.run_folder = RunFolder(self.run_dir)
        callbacks += [
            self.run_folder,
            ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=self.model.monitor,
                            mode=getattr(self.model, "monitor_mode", "min")),
            *last_checkpoints(checkpoints, run.last_every_n_steps),  # after "best": last.ckpt holds its new state
            SaveOnException(checkpoints / "interrupted.ckpt"),
            ResumeState(),
        ]
        topology = launcher_topology()
        if topology is not None:
            kwargs["devices"], kwargs["num_nodes"], launcher = topology
            rank_zero_info(f"{launcher} started {topology[1]} node(s) x {topology[0]} process(es)")
        # Every task's loaders shard their data themselves (tasks/common/sharding.py): Lightning's sampler
        # would repeat evaluation examples and cannot shard a length-bucketed batch sampler.
        kwargs["use_distributed_sampler"] = False
        kwargs["plugins"] = [*(trainer_config.get("plugins") or []), RankZeroCheckpointIO()]
        if trainer_config.get("logger") in (None, True):
            wandb_id = wandb_run_id(self.run_dir) if run.resume else None  # the resumed run logs to its wandb run
            kwargs["logger"] = make_logger(run.wandb, self.run_dir, run.wandb_project, f"{self.task.name}-{name}",
                                           run_id=wandb_id)
        if kwargs.get("logger", trainer_config.get("logger")):
            callbacks.append(LearningRateMonitor())
        kwargs["callbacks"] = callbacks
        kwargs["default_root_dir"] = str(self.run_dir)
        return super().instantiate_trainer(**kwargs)


def refuse_automatic_options(task: Task, model, trainer_config: dict) -> None:
    """A model that steps its optimiser itself (several steps per batch) cannot have Lightning clip or accumulate
    its gradients: say so in one line, before anything is built, and name the model's own option."""
    if model.automatic_optimization:
        return
    if trainer_config.get("gradient_clip_val"):
        raise InputError(f"--trainer.gradient_clip_val: {task.name} steps its optimiser itself and clips each step: "
                         "set --model.grad_clip instead")
    if (trainer_config.get("accumulate_grad_batches") or 1) != 1:
        raise InputError(f"--trainer.accumulate_grad_batches: {task.name} steps its optimiser itself, several times "
                         "per batch; raise --data.batch_size instead")


def refuse_linked_targets(task: Task, args: list[str]) -> None:
    """A data option that the CLI fills from the model's (a parse link) cannot be given itself: say which to give,
    rather than jsonargparse's "invalid value" for an option that exists in --help."""
    for source, target in task.parse_links:
        if any(arg == f"--{target}" or arg.startswith(f"--{target}=") for arg in args):
            raise InputError(f"--{target} is set from --{source}: give --{source} instead")


def train(task: Task, args: list[str]) -> TrainResult:
    """Fit, then test the best checkpoint; returns where everything is, for the caller or a test."""
    refuse_linked_targets(task, args)
    resume, args = split_resume(args)
    resumed = None
    if resume:  # checked before anything is built: a bad file is a one-line error, not a traceback later
        args, path = resume_arguments(resume, args)
        args.append("--trainer.num_sanity_val_steps=0")  # validated already; it would draw from the generators
        resumed = (path, check_training_checkpoint(path, task.model)) if path is not None else None
    with warnings.catch_warnings():  # LightningCLI warns when sys.argv also holds `lstm-suite train TASK`
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = SuiteCLI(task, args)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    if resumed is not None:
        check_fits(*resumed, model)
        resumed = None  # Lightning reads it again, on rank 0
    if trainer.logger is not None and hasattr(trainer.logger, "log_hyperparams"):
        trainer.logger.log_hyperparams({"task": task.name, "run_dir": str(cli.run_dir)})  # (rank 0's: only it logs)
    run: RunOptions = cli.config_init["run"]
    # Values near zero (denormals) take the CPU's slow path: a trained LSTM's steps ran 45% slower without this.
    torch.set_flush_denormal(True)
    trainer.fit(model, datamodule=data, ckpt_path=run.resume, weights_only=True)
    run_dir = cli.run_folder.path  # rank 0's, on every process
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = Path(checkpoint.best_model_path) if checkpoint and checkpoint.best_model_path else None
    last = run_dir / "checkpoints" / "last.ckpt"
    last = last if last.is_file() else None
    if run.test and best is not None and not trainer.interrupted and getattr(data, "has_test", True):
        for result in trainer.test(model, datamodule=data, ckpt_path=str(best), weights_only=True):
            metrics.update({k: float(v) for k, v in result.items()})
    wandb_dir = wandb_run_dir(trainer.logger)
    if trainer.logger is not None:
        trainer.logger.finalize("success")
        finish(trainer.logger)
    result = TrainResult(run_dir, best, last, metrics, trainer, wandb_dir)
    if trainer.is_global_zero:
        print_summary(task, result, run)
    return result


def print_summary(task: Task, result: TrainResult, run: RunOptions) -> None:
    lines = [f"\nDone: {task.name} run in {result.run_dir}"]
    if result.best_checkpoint:
        best_score = getattr(result.trainer.checkpoint_callback, "best_model_score", None)  # not the last epoch's
        score = float(best_score) if best_score is not None else result.metrics.get(task.model.monitor)
        lines.append(f"  best checkpoint  {result.best_checkpoint}" + (f"  ({task.model.monitor} {score:.4f})" if score is not None else ""))
    if result.last_checkpoint:
        lines.append(f"  last checkpoint  {result.last_checkpoint}")
    tests = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    if tests:
        lines.append("  test             " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(tests.items())))
    mode = resolve_wandb_mode(run.wandb)
    if result.wandb_dir:
        lines.append(f"  wandb ({mode})   {result.wandb_dir}")
        if mode == "offline":
            lines.append(f"                   upload it with: wandb sync {result.wandb_dir}")
    for command in task.after_training:
        lines.append(f"  next             {command.format(task=task.name, ckpt=result.best_checkpoint)}")
    print("\n".join(lines), flush=True)
