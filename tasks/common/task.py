"""What the shared layer knows of a task: its model, data and commands (the table of all tasks is tasks/registry.py),
and where its YAML is."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import lightning as L

from tasks.common.errors import InputError

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    model: type[L.LightningModule]
    data: type[L.LightningDataModule]
    links: tuple[tuple[str, str], ...] = ()  # (data attribute, model argument), set once data exists
    parse_links: tuple[tuple[str, str], ...] = ()  # (model argument, data argument): the user sets it on the model
    commands: dict[str, Callable[[list[str]], int]] = field(default_factory=dict)  # besides `train`
    after_training: tuple[str, ...] = ()  # hints printed after training; {task} and {ckpt} are filled


def config_path(task: Task) -> Path:
    """configs/<task>.yaml of the source tree, or of the current folder when installed elsewhere."""
    for folder in (REPO_CONFIGS, Path.cwd() / "configs"):
        if (folder / f"{task.name}.yaml").is_file():
            return folder / f"{task.name}.yaml"
    raise InputError(f"no configs/{task.name}.yaml next to the package or in {Path.cwd()}")
