"""Resume that loses nothing: a run killed with SIGKILL at a random step (or while writing a checkpoint),
resumed with `--run.resume=<run folder>`, ends with the same weights, bit for bit, as one never interrupted."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tasks.cli import main
from tasks.registry import get_task
from tiny_tasks import cli_args, tiny

TESTS = Path(__file__).resolve().parent
EPOCHS = {"music": 3, "translation": 2, "forecast": 1}
STEPS_PER_EPOCH = {"music": 4, "translation": 19}  # tiny data: 15 training pieces / 4, 300 pairs / 16


def run(task: str, folder: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder / "home"), "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run([sys.executable, "-m", "tasks", "train", task, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == expect, done.stderr[-3000:]
    return done


def start(task: str, folder: Path, name: str, *more: str, expect: int = 0):
    settings = tiny(task, folder / "data")
    return run(task, folder, *cli_args(settings), f"--trainer.max_epochs={EPOCHS[task]}", "--run.test=false",
               "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
               f"--run.root={folder / 'runs'}", f"--run.name={name}", "--run.wandb=off", *more, expect=expect)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def kill(folder: Path, **where) -> str:
    init = {"once": str(folder / "killed"), **where}
    return "--trainer.callbacks+=" + json.dumps({"class_path": "ddp_probe.KillSelf", "init_args": init})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One run of each task that nothing stops: the weights to reach."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    for task in ("music", "translation"):
        start(task, folder, f"{task}-full")
    return {task: weights(folder / "runs" / task / f"{task}-full") for task in ("music", "translation")}


def best_score(checkpoint: Path) -> float:
    callbacks = torch.load(checkpoint, weights_only=True)["callbacks"]
    best = next(k for k in callbacks if k.startswith("ModelCheckpoint") and "'monitor': 'val/" in k)
    return float(callbacks[best]["best_model_score"])


@pytest.mark.parametrize("task,where", [
    ("music", {"step": random.Random(0).randrange(STEPS_PER_EPOCH["music"] + 1, 3 * STEPS_PER_EPOCH["music"])}),
    ("music", {"save": 3}),  # while writing epoch 1's checkpoints
    ("translation", {"step": random.Random(1).randrange(STEPS_PER_EPOCH["translation"] + 1,
                                                        2 * STEPS_PER_EPOCH["translation"])}),
], ids=["music-random-step", "music-during-save", "translation-random-step"])
def test_killed_and_resumed_run_ends_with_identical_weights(task, where, uninterrupted, tmp_path):
    start(task, tmp_path, "cut", kill(tmp_path, **where), "--run.wandb=offline", expect=-signal.SIGKILL)
    run_dir = tmp_path / "runs" / task / "cut"
    best_before = best_score(run_dir / "checkpoints" / "last.ckpt")
    done = run(task, tmp_path, f"--run.resume={run_dir}")  # nothing else: the run's own config
    assert [p.name for p in (tmp_path / "runs" / task).iterdir()] == ["cut"]  # the same folder
    resumed = weights(run_dir)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == EPOCHS[task] - 1
    assert resumed.keys() == uninterrupted[task].keys()
    assert all(torch.equal(resumed[k], uninterrupted[task][k]) for k in resumed)  # bit for bit
    # the same run goes on: its best score (not just epochs after the resume) and its wandb run
    assert "dirpath has changed" not in done.stderr
    sign = 1 if getattr(get_task(task).model, "monitor_mode", "min") == "min" else -1
    assert sign * best_score(run_dir / "checkpoints" / "last.ckpt") <= sign * best_before  # never worse than before
    assert len({p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")}) == 1


class _RunsCode:
    def __reduce__(self):
        return os.system, ("echo this must never run",)


@pytest.mark.parametrize("kind", ["empty", "truncated", "runs-code"])
def test_a_bad_resume_file_is_one_line(kind, tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    if kind == "runs-code":
        torch.save({"state_dict": {}, "loops": {}, "hyper_parameters": _RunsCode()}, bad)
    else:
        bad.write_bytes(b"" if kind == "empty" else b"PK\x03\x04 truncated")
    assert main(["train", "music", f"--run.resume={bad}"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and str(bad) in captured.err, captured.err
    assert "must never run" not in captured.out


def test_resume_refuses_a_missing_path_another_task_and_changed_sizes(tmp_path, capsys):
    assert main(["train", "music", f"--run.resume={tmp_path / 'nope'}"]) == 2
    assert "no such checkpoint or run folder" in capsys.readouterr().err
    start("forecast", tmp_path, "f", "--trainer.max_epochs=1")
    forecast = tmp_path / "runs" / "forecast" / "f"
    assert main(["train", "music", f"--run.resume={forecast}"]) == 2
    assert "a checkpoint of another task" in capsys.readouterr().err
    assert main(["train", "forecast", f"--run.resume={forecast}", "--model.hidden_size=99"]) == 2
    err = capsys.readouterr().err
    assert "shape" in err and "do not change model sizes" in err and len(err.strip().splitlines()) == 1


def test_a_run_resumed_within_an_epoch_trains_the_rest_of_it_once(tmp_path):
    """From a mid-epoch last.ckpt (every 5 steps), the resumed epoch serves only the batches not yet trained."""
    steps = STEPS_PER_EPOCH["translation"]
    start("translation", tmp_path, "mid", kill(tmp_path, step=steps + 7), "--run.last_every_n_steps=5",
          probe_shards(tmp_path / "probe"), expect=-signal.SIGKILL)
    run_dir = tmp_path / "runs" / "translation" / "mid"
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved == 25  # 6 batches into epoch 1
    run("translation", tmp_path, f"--run.resume={run_dir}")
    record = json.loads((tmp_path / "probe" / "rank0.json").read_text())  # written by the resumed run
    assert record["served"][0] == record["train"][0][saved - steps:]  # the rest of epoch 1, nothing twice
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (final["epoch"], final["global_step"]) == (1, 2 * steps)


def probe_shards(out: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": "ddp_probe.RecordShards", "init_args": {"out": str(out)}})
