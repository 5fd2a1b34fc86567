"""Tiny checkpoints for the server and demo tests: two training batches of each task, trained once per session."""
from __future__ import annotations

import socket
from pathlib import Path

from tasks.common.training import train
from tasks.registry import TASKS, get_task
from tiny_tasks import cli_args, tiny

QUICK = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
         "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false", "--run.wandb=off", "--run.test=false", "--run.name=tiny"]


def tiny_runs(tmp_path_factory, tasks=tuple(TASKS)) -> Path:
    """A runs folder holding runs/<task>/tiny/checkpoints/best.ckpt for each of `tasks` (trained on first use, shared
    by every test module of the session); the data of each task is beside it."""
    root = tmp_path_factory.getbasetemp() / "serving"
    for task in tasks:
        if not (root / "runs" / task / "tiny" / "checkpoints" / "best.ckpt").is_file():
            train(get_task(task), [*cli_args(tiny(task, root / "data" / task)), f"--run.root={root / 'runs'}", *QUICK])
    return root / "runs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
