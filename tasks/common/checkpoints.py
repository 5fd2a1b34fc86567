"""Finding and loading checkpoints safely: with weights_only=True a checkpoint can never run code."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Optional, TypeVar

import lightning as L
import torch

from tasks.common.arguments import user_path
from tasks.common.errors import InputError
from tasks.common.errors import describe_error

M = TypeVar("M", bound=L.LightningModule)
STARTS = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy format, a pickle (protocol 2+)


def newest_checkpoint(task: str, runs_root: str | Path = "runs", kind: str = "best") -> Path:
    """The `kind` checkpoint (best or last) of the newest run of `task` that has one."""
    found = sorted(Path(runs_root).glob(f"{task}/*/checkpoints/{kind}.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise InputError(f"no {kind}.ckpt under {runs_root}/{task}/: train first (make train TASK={task}) or pass CKPT=path")
    return found[-1]


def add_checkpoint_arguments(parser, task: str) -> None:
    """--ckpt and --runs-root, the same for every command that uses a trained model."""
    parser.add_argument("--ckpt", type=user_path, help=f"checkpoint to use (default: best.ckpt of the newest {task} run)")
    parser.add_argument("--runs-root", type=user_path, default="runs", help="where to look for the newest run")


def chosen_checkpoint(args, task: str) -> Path:
    """--ckpt if given, else the newest run's best checkpoint (with a one-line error when there is none)."""
    return Path(args.ckpt) if args.ckpt else newest_checkpoint(task, args.runs_root)


def load_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True and one-line errors for a missing, damaged or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path}: no such file")
    try:
        with path.open("rb") as file:
            start = file.read(4)
    except OSError as error:
        raise InputError(f"checkpoint {path}: cannot read it ({error.strerror})") from None
    if start and not start.startswith(STARTS):
        raise InputError(f"checkpoint {path}: not a readable PyTorch checkpoint (no torch.save file starts with {start!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        blocked = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), None)
        if blocked:  # the pickle names a function or class to call: exactly what weights_only is for
            raise InputError(f"checkpoint {path}: refused, loading it would run code ({blocked})") from None
        raise InputError(f"checkpoint {path}: not a readable PyTorch checkpoint") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as error:
        if zipfile.is_zipfile(path):  # a whole archive, but not torch.save's
            raise InputError(f"checkpoint {path}: not a readable PyTorch checkpoint ({describe_error(error)})") from None
        raise InputError(f"checkpoint {path}: truncated or empty ({path.stat().st_size} bytes), not a readable PyTorch "
                         "checkpoint: was its save or copy interrupted?") from None


def load_model(model_class: type[M], path: str | Path, map_location: Optional[str] = None) -> M:
    """Rebuild a LightningModule from its saved hyperparameters and weights: no config needed."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"checkpoint {path}: not a Lightning checkpoint of this project (no hyper_parameters/state_dict)")
    for key in ("hyper_parameters", "state_dict"):
        if not isinstance(checkpoint[key], dict):
            raise InputError(f"checkpoint {path}: its {key} is a {type(checkpoint[key]).__name__}, not a dict: "
                             "not a Lightning checkpoint of this project")
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not str(k).startswith("_")}
    try:
        model = model_class(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
        model.on_load_checkpoint(checkpoint)  # what a model keeps beside its weights (Lightning calls it too)
    except (TypeError, RuntimeError) as error:
        raise InputError(f"checkpoint {path}: does not fit {model_class.__name__} ({str(error).splitlines()[0]})") from None
    return model.to(map_location or "cpu").eval()
