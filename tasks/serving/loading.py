"""Which checkpoint serves each task: the newest run's best.ckpt, or the user's `--ckpt task=path`; loaded once."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Optional

import lightning as L

from tasks.common.checkpoints import load_checkpoint, load_model, newest_checkpoint
from tasks.common.errors import InputError
from tasks.registry import TASKS, get_task

# What a checkpoint must hold besides its weights, as the one-shot commands check it.
NEEDS = {
    "translation": ("tokenizer", lambda model: model.tokenizer),
    "speech": ("vocabulary", lambda model: model.vocab),
    "forecast": ("series information", lambda model: model.hparams.series_info),
}


def train_command(task: str) -> str:
    return f"make train TASK={task}"


def parse_overrides(pairs: Iterable[str]) -> dict[str, Path]:
    """['music=runs/x/best.ckpt', ...] -> {task: path}, each task known and each file there."""
    chosen = {}
    for pair in pairs:
        task, sep, path = pair.partition("=")
        if not sep or not path:
            raise InputError(f"--ckpt {pair!r}: expected TASK=PATH, e.g. --ckpt music=runs/music/<run>/checkpoints/best.ckpt")
        get_task(task)
        chosen[task] = Path(path).expanduser()
        if not chosen[task].is_file():
            raise InputError(f"--ckpt {pair}: no such file")
    return chosen


def choose_checkpoints(tasks: Iterable[str], overrides: dict[str, Path],
                       runs_root: str | Path = "runs") -> tuple[dict[str, Path], dict[str, str]]:
    """({task: checkpoint} to serve, {task: why not}) for the tasks asked for, by default every task.

    A task asked for by name must have a checkpoint; unnamed tasks without one are only reported."""
    named = list(dict.fromkeys(tasks))
    for task in named:
        get_task(task)
    chosen, missing = {}, {}
    for task in named or list(TASKS):
        if task in overrides:
            continue
        try:
            chosen[task] = newest_checkpoint(task, runs_root)
        except InputError:
            missing[task] = f"no checkpoint under {runs_root}/{task}/: train one with `{train_command(task)}`"
            if task in named:
                raise InputError(f"{task}: {missing[task]}, or pass --ckpt {task}=PATH") from None
    chosen.update(overrides)
    if not chosen:
        raise InputError(f"no checkpoint of any task under {runs_root}/: train one first, e.g. "
                         f"`{train_command('music')}`, or pass --ckpt TASK=PATH")
    return {task: chosen[task] for task in TASKS if task in chosen}, missing


def load(task: str, path: str | Path) -> L.LightningModule:
    """The task's model from `path`, in eval mode, with what its commands need (one-line InputError otherwise)."""
    model = load_model(get_task(task).model, path)
    if task in NEEDS and NEEDS[task][1](model) is None:
        raise InputError(f"checkpoint {path}: holds no {NEEDS[task][0]} (was it saved before training started?)")
    return model


def describe(path: str | Path, checkpoint: Optional[dict] = None) -> dict:
    """What GET /info says of a checkpoint: where, when, how far it trained, and its best validation score."""
    checkpoint = checkpoint if checkpoint is not None else load_checkpoint(path)
    metrics = {}
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_score") is not None:
            metrics[state["monitor"]] = round(float(state["best_model_score"]), 6)
    return {"checkpoint": str(path), "written": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(Path(path).stat().st_mtime)),
            "epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step"), "metrics": metrics}
