"""`--run.resume=<run folder or checkpoint>`: the run goes on in its own folder, with its own saved config, best
score and wandb run, and trains on what an uninterrupted run would have trained on.

What a checkpoint holds beyond Lightning's own state: the random generators (dropout masks, random crops and
transpositions draw from them), so that a run resumed from the end of an epoch continues bit for bit.
"""
from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lightning.pytorch import Callback

from tasks.common.checkpoints import load_checkpoint
from tasks.common.errors import InputError
from tasks.common.launching import launched_as_rank_zero

CONFIG = "config.yaml"


def split_resume(args: list[str]) -> tuple[Optional[str], list[str]]:
    """The value of --run.resume (either form) and the other arguments."""
    value, rest, i = None, [], 0
    while i < len(args):
        if args[i].startswith("--run.resume="):
            value = args[i].split("=", 1)[1]
        elif args[i] == "--run.resume" and i + 1 < len(args):
            value, i = args[i + 1], i + 1
        else:
            rest.append(args[i])
        i += 1
    return (value or None), rest


def newest_checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint a run folder continues from: interrupted.ckpt when written after last.ckpt, else last.ckpt."""
    found = [p for p in (run_dir / "checkpoints" / n for n in ("last.ckpt", "interrupted.ckpt")) if p.is_file()]
    if not found:
        raise InputError(f"--run.resume {run_dir}: this run folder has no checkpoints/last.ckpt to continue from")
    return max(found, key=lambda p: p.stat().st_mtime)


def check_training_checkpoint(path: Path, model_class) -> dict:
    """Load `path` safely and check that it is a training checkpoint of `model_class`; one-line errors."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or "loops" not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"--run.resume {path}: not a training checkpoint of this project (no training state in it)")
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise InputError(f"--run.resume {path}: its hyper_parameters are not settings (a {type(hparams).__name__})")
    accepted = set(inspect.signature(model_class.__init__).parameters)
    unknown = sorted(k for k in hparams if not k.startswith("_") and k not in accepted)
    if unknown:
        raise InputError(f"--run.resume {path}: a checkpoint of another task (settings {', '.join(unknown[:3])} are "
                         f"not {model_class.__name__}'s)")
    return checkpoint


def check_fits(path: Path, checkpoint: dict, model) -> None:
    """The checkpoint's weights have the shapes of `model` (built from the run's config and the overrides), under
    the names the model gives an older checkpoint's weights (its on_load_checkpoint, on a copy)."""
    mine = model.state_dict()
    renamed = dict(checkpoint)
    model.on_load_checkpoint(renamed)
    for name, tensor in renamed["state_dict"].items():
        if name not in mine or mine[name].shape != tensor.shape:
            have = tuple(mine[name].shape) if name in mine else "nothing"
            raise InputError(f"--run.resume {path}: {name} has shape {tuple(tensor.shape)} there, {have} in this "
                             "model: do not change model sizes when resuming")


def resume_arguments(value: str, args: list[str]) -> tuple[list[str], Optional[Path]]:
    """--run.resume=<run folder or checkpoint> -> the arguments that continue that run, and its checkpoint.

    The run's saved config comes first, so the run goes on as it was set up; the arguments given now come
    after it and win (e.g. --trainer.max_epochs=50 to train longer).
    """
    target = Path(value).expanduser()
    if not target.exists() and not launched_as_rank_zero():  # another node: rank 0 reads and sends the checkpoint
        return [*args, f"--run.resume={value}"], None
    if target.is_dir():
        run_dir, checkpoint = target, newest_checkpoint_of(target)
    elif target.is_file():
        checkpoint = target
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else None
    else:
        raise InputError(f"--run.resume {value}: no such checkpoint or run folder")
    front = []
    if run_dir is not None:
        front += [f"--run.root={run_dir.parent.parent}", f"--run.name={run_dir.name}"]
        if (run_dir / CONFIG).is_file():
            front = ["--config", str(run_dir / CONFIG), *front]
    return [*front, *args, f"--run.resume={checkpoint}"], checkpoint


def wandb_run_id(run_dir: Path) -> Optional[str]:
    """The id of the (newest) wandb run in a run folder: its folders are named <mode>-run-<time>-<id>."""
    runs = sorted((run_dir / "wandb").glob("*-run-*-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1].name.rsplit("-", 1)[1] if runs else None


class ResumeState(Callback):
    """What Lightning's checkpoints leave out, for a resumed run to go on exactly as an uninterrupted one:

    - the global random generators (torch, numpy, Python), restored when fit starts (a resumed run skips
      the sanity check, which would draw from them before training);
    - the step a ReduceLROnPlateau schedule takes at the end of an epoch: Lightning writes epoch-end
      checkpoints before it, and on resuming skips it (the metric is gone), so it is taken here with the
      value saved at that moment.
    """

    def __init__(self):
        self.loaded: Optional[dict] = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        numpy = np.random.get_state()
        version, state, gauss = random.getstate()
        checkpoint["random_state"] = {  # plain values and a tensor: loadable with weights_only=True
            "torch": torch.get_rng_state(),
            "numpy": [numpy[0], numpy[1].tolist(), int(numpy[2]), int(numpy[3]), float(numpy[4])],
            "python": [version, list(state), gauss],
        }
        checkpoint["plateau_metrics"] = {config.monitor: float(trainer.callback_metrics[config.monitor])
                                         for config in trainer.lr_scheduler_configs
                                         if config.reduce_on_plateau and config.monitor in trainer.callback_metrics}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.loaded = {k: checkpoint.get(k) for k in ("random_state", "plateau_metrics")}
        progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]
        self.loaded["at_epoch_end"] = progress["processed"] > progress["completed"]

    def on_fit_start(self, trainer, pl_module) -> None:
        saved = (self.loaded or {}).get("random_state")
        if saved is None:
            return
        torch.set_rng_state(saved["torch"])
        name, keys, pos, has_gauss, cached = saved["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, state, gauss = saved["python"]
        random.setstate((version, tuple(state), gauss))

    def on_train_start(self, trainer, pl_module) -> None:
        if self.loaded and self.loaded["at_epoch_end"]:
            for config in trainer.lr_scheduler_configs:
                value = (self.loaded["plateau_metrics"] or {}).get(config.monitor)
                if config.reduce_on_plateau and value is not None:
                    config.scheduler.step(value)
        self.loaded = None
