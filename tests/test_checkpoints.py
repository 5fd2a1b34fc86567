"""Checkpoints that lose nothing: last.ckpt after every epoch (and every n steps), written atomically."""
from __future__ import annotations

import pytest
import torch

from tasks.common.errors import InputError
from tasks.common.training import make_run_folder, train
from tasks.registry import get_task
from tiny_tasks import cli_args, tiny

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--run.wandb=off",
         "--run.test=false"]


def epoch_of(path) -> int:
    return torch.load(path, weights_only=True)["epoch"]


def test_last_checkpoint_is_the_last_epoch_even_when_validation_stops_improving(tmp_path):
    # lr 0: the validation loss never improves after the first epoch, so "best" stays at epoch 0
    result = train(get_task("forecast"), [*cli_args(tiny("forecast", tmp_path)), "--model.lr=0",
                                          "--trainer.max_epochs=3", f"--run.root={tmp_path}", *QUIET])
    assert epoch_of(result.best_checkpoint) == 0
    assert result.last_checkpoint == result.run_dir / "checkpoints" / "last.ckpt"
    assert epoch_of(result.last_checkpoint) == 2  # before: written with "best" only, so it said epoch 0


def test_last_checkpoint_every_n_steps_keeps_work_within_an_epoch(tmp_path):
    music = tiny("music", tmp_path)
    args = [*cli_args(music), "--trainer.max_epochs=1", f"--run.root={tmp_path}", "--run.name=cut", *QUIET,
            "--run.last_every_n_steps=2"]
    with pytest.raises(RuntimeError, match="planned failure"):
        train(get_task("music"), [*args, "--trainer.callbacks+=ddp_probe.RaiseOnRank",
                                  "--trainer.callbacks.rank=0", "--trainer.callbacks.step=3"])
    saved = torch.load(tmp_path / "music" / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2 and saved["epoch"] == 0  # mid-epoch, the last multiple of 2 before the crash


def test_last_every_n_steps_must_be_positive(tmp_path):
    with pytest.raises(InputError, match="at least 1"):
        train(get_task("forecast"), [f"--run.root={tmp_path}", "--run.last_every_n_steps=0", *QUIET])


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    first = make_run_folder(tmp_path / "music" / "20261202-101500", reuse=False)
    second = make_run_folder(tmp_path / "music" / "20261202-101500", reuse=False)
    assert first != second and first.is_dir() and second.is_dir() and second.name == "20261202-101500-2"
    assert make_run_folder(first, reuse=True) == first  # an explicit --run.name is the user's to reuse
