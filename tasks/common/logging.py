"""Weights & Biases online when the user is logged in, offline otherwise; it never prompts."""
from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from tasks.common.errors import InputError


def logged_in_to_wandb() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:  # what `wandb login` writes (to $NETRC when set)
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(requested: str) -> str:
    """auto -> WANDB_MODE if set, else online with credentials, else offline."""
    if requested != "auto":
        return requested
    from_env = os.environ.get("WANDB_MODE")
    if from_env in ("online", "offline", "disabled"):
        return "off" if from_env == "disabled" else from_env
    return "online" if logged_in_to_wandb() else "offline"


def check_wandb_login(requested: str) -> None:
    """Online logging without credentials is a one-line error before anything starts (wandb would fail later,
    in a long traceback)."""
    if resolve_wandb_mode(requested) == "online" and not logged_in_to_wandb():
        chosen = f"--run.wandb={requested}" if requested != "auto" else "WANDB_MODE=online"
        raise InputError(f"{chosen}: not logged in to Weights & Biases (no WANDB_API_KEY, no ~/.netrc entry): "
                         "run `wandb login` first, or train with --run.wandb=offline (upload later with wandb sync)")


def make_logger(mode: str, run_dir: Path, project: str, run_name: str, config: Optional[dict] = None,
                run_id: Optional[str] = None) -> Logger:
    """A WandbLogger writing under run_dir/wandb (continuing the wandb run `run_id` if given), or a CSVLogger
    when wandb is off (csv/version_N: a resumed run adds a version, never overwrites the first's logs)."""
    mode = resolve_wandb_mode(mode)  # (training checked the login first: check_wandb_login)
    if mode == "off":
        return CSVLogger(save_dir=str(run_dir), name="csv")
    os.environ["WANDB_MODE"] = mode  # makes the mode binding for wandb's own login checks: no prompt
    os.environ.setdefault("WANDB_SILENT", "true")
    resume = {"id": run_id, "resume": "allow"} if run_id else {}
    logger = WandbLogger(project=project, name=run_name, save_dir=str(run_dir), offline=mode == "offline", config=config,
                         **resume)
    logger._wandb_init.pop("anonymous", None)  # deprecated in wandb, which warns whenever it is passed
    return logger


def wandb_run_dir(logger: Logger) -> Optional[Path]:
    """The local folder of the wandb run (what `wandb sync` takes), if the logger is wandb."""
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        return Path(logger.experiment.dir).parent
    return None


def finish(logger: Logger) -> None:
    """Close the wandb run now, so that everything is written and the next run in this process is new."""
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()
