"""Several processes training together (DDP over gloo on CPU), for every task.

In-process: each task's data module, built as rank 0 and as rank 1 of 2, trains on disjoint shards of equal
batch count that together cover the training set, re-shuffled per epoch, and evaluates each example once.
Real processes: `lstm-suite train TASK` with TRAINER=ddp-cpu (Lightning starts the second process), and two
torchrun "nodes" on 127.0.0.1; tests/ddp_probe.py records what each rank saw.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer

from ddp_probe import shard_of
from tasks.common.checkpoints import load_model
from tasks.common.launching import launcher_topology
from tasks.common.sharding import ShardedBatches, split_largest
from tasks.common.training import train
from tasks.registry import TASKS, get_task
from tiny_tasks import cli_args, tiny

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def flat(batches) -> list[int]:
    return [i for batch in batches for i in batch]


# ---- the sampler itself ----

@pytest.mark.parametrize("size,batch,world", [(10, 4, 2), (9, 4, 2), (7, 3, 3), (5, 5, 2), (64, 8, 4)])
def test_sharded_batches_split_any_epoch_evenly(size, batch, world):
    global_batches = [list(range(i, min(size, i + batch))) for i in range(0, size, batch)]
    train = [ShardedBatches(lambda e: global_batches, rank=r, world=world, train=True).batches() for r in range(world)]
    assert len({len(b) for b in train}) == 1  # equal steps: DDP syncs gradients at every one
    assert sorted(flat(b for shard in train for b in shard)) == list(range(size))  # each example once
    evaluation = [ShardedBatches(lambda e: global_batches, rank=r, world=world, train=False).batches() for r in range(world)]
    assert all(evaluation) and sorted(flat(b for shard in evaluation for b in shard)) == list(range(size))


def test_torchrun_and_slurm_decide_devices_and_nodes(monkeypatch):
    for name in [k for k in os.environ if k.startswith(("SLURM_", "TORCHELASTIC", "LOCAL_WORLD", "WORLD_SIZE"))]:
        monkeypatch.delenv(name)
    assert launcher_topology() is None
    monkeypatch.setenv("SLURM_NTASKS", "16")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "lstm-suite")
    assert launcher_topology() == (8, 2, "SLURM")  # --gpus-per-node: every task sees the node's GPUs
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4(x2)")
    assert launcher_topology() == (4, 2, "SLURM")
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive shell: Lightning starts the processes itself
    assert launcher_topology() is None
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setenv("WORLD_SIZE", "32")
    assert launcher_topology() == (8, 4, "torchrun")


def test_too_few_examples_for_the_processes_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot be shared out"):
        split_largest([[0]], lambda n: n >= 2)


# ---- every task's data module as rank 0 and rank 1 of 2 ----

def as_rank(data, rank: int):
    data.trainer = SimpleNamespace(global_rank=rank, world_size=2)  # no fit_loop: loaders start at epoch 0
    return data


def train_shard(data, rank: int, epoch: int):
    loader = as_rank(data, rank).train_dataloader()
    if isinstance(loader.batch_sampler, ShardedBatches):
        loader.batch_sampler.set_epoch(epoch)  # what Lightning does when an epoch starts
    else:  # forecast: one item per epoch, which counts the epochs itself
        loader.dataset.epoch = epoch
    return loader, *shard_of(loader)


def eval_shard(data, rank: int, split: str):
    return shard_of(getattr(as_rank(data, rank), f"{split}_dataloader")())[0]


@pytest.mark.parametrize("task", list(TASKS))
def test_ranks_train_on_disjoint_equal_shares_and_evaluate_each_example_once(task, tmp_path):
    data = get_task(task).data(**tiny(task, tmp_path)["data"])
    data.prepare_data()
    data.setup("fit")
    epochs = []
    for epoch in (0, 1):
        shards = [train_shard(data, rank, epoch) for rank in (0, 1)]
        (loader0, first, size), (_, second, _) = shards
        assert len(first) == len(second) > 0, task  # equal steps
        assert not set(flat(first)) & set(flat(second)), task  # disjoint
        assert sorted(flat(first) + flat(second)) == list(range(size)), task  # together: the training set once
        epochs.append(first)
        served = getattr(next(iter(loader0)), "index", None)
        if isinstance(served, torch.Tensor):  # the loader serves what the sampler says
            assert served.tolist() == first[0]
    assert epochs[0] != epochs[1], task  # re-shuffled every epoch, from a seed every rank shares
    for split in ("val", "test") if getattr(data, "has_test", True) else ("val",):
        first, second = (eval_shard(data, rank, split) for rank in (0, 1))
        assert first and second, (task, split)  # every rank takes part in the metric syncs
        if task == "forecast":  # windows, known by their origin in the series
            expected = data.windows[split].origins.tolist()
        else:
            expected = list(range(len(getattr(data, f"{split}_dataloader")().dataset)))
        assert sorted(flat(first) + flat(second)) == sorted(expected), (task, split)  # each example exactly once


# ---- real processes ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PL_", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE",
                                                                     "MASTER_", "TORCHELASTIC", "RANK"))}
    return {**env, "PYTHONPATH": str(TESTS), "HOME": str(home), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "OMP_NUM_THREADS": "1"}


def probe(out: Path, cls: str = "RecordShards", **init) -> str:
    init = {"out": str(out), **init} if cls == "RecordShards" else init
    return "--trainer.callbacks+=" + json.dumps({"class_path": f"ddp_probe.{cls}", "init_args": init})


def train_command(task: str, settings: dict, *more: str) -> list[str]:
    return [*cli_args(settings), "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--trainer.num_sanity_val_steps=0", *more]


def records(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def single_device_validation(task: str, settings: dict, checkpoint: Path) -> dict[str, float]:
    model = load_model(get_task(task).model, checkpoint)
    data = get_task(task).data(**settings["data"])
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, use_distributed_sampler=False)
    return {k: float(v) for k, v in trainer.validate(model, datamodule=data, verbose=False)[0].items()}


EPOCHS = {"translation": ["--trainer.max_epochs=3", "--model.lr=0.01"]}  # enough for a BLEU above 0


@pytest.mark.parametrize("task", list(TASKS))
def test_two_processes_share_the_work_and_agree_on_everything(task, tmp_path):
    settings = tiny(task, tmp_path / "data")
    out, runs = tmp_path / "probe", tmp_path / "runs"
    command = [sys.executable, "-m", "tasks", "train", task, "--config", str(REPO / "configs/trainer/ddp-cpu.yaml"),
               *train_command(task, settings, *EPOCHS.get(task, ["--trainer.max_epochs=2"])), f"--run.root={runs}",
               "--run.wandb=offline", probe(out)]  # no --run.name: the processes must agree on one
    done = subprocess.run(command, cwd=tmp_path, env=child_env(tmp_path / "home"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = records(out)
    assert (first["rank"], second["rank"], first["world"]) == (0, 1, 2)

    for mine, theirs in zip(first["train"], second["train"]):  # each epoch
        assert len(mine) == len(theirs) and not set(flat(mine)) & set(flat(theirs))
        assert sorted(flat(mine) + flat(theirs)) == list(range(first["train_size"]))
    assert first["train"][0] != first["train"][1]  # the epoch reached the sampler
    for record in (first, second):
        if any(record["served"]):  # batches that carry their indices: what was trained on is what was sharded
            assert record["served"] == record["train"]
    for mine, theirs in zip(first["val"], second["val"]):
        assert sorted(flat(mine) + flat(theirs)) == sorted(set(flat(mine) + flat(theirs)))  # nothing twice

    assert first["val_metrics"] == second["val_metrics"] and first["val_metrics"][-1]  # synced, not per rank
    assert first["test_metrics"] == second["test_metrics"] and first["test_metrics"]
    if task == "speech":  # the decoder was chosen on validation clips from both ranks' shares, the same on both
        assert {"test/decoder_val_wer_greedy", "test/decoder_val_wer_beam"} <= set(first["test_metrics"])

    folders = list((runs / task).iterdir())
    assert len(folders) == 1, folders  # one run folder, which every rank used
    run_dir = folders[0]
    assert first["run_dir"] == second["run_dir"] == str(run_dir)
    assert {p.name for p in (run_dir / "checkpoints").glob("*.ckpt")} == {"best.ckpt", "last.ckpt"}
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run
    if task == "video":  # the confusion-matrix collective ran on both ranks; rank 0 drew it
        assert list((run_dir / "confusion").glob("val_epoch_*.png"))
    assert done.stdout.count("Done: ") == 1  # one summary, from rank 0

    best = run_dir / "checkpoints" / "best.ckpt"
    epoch = torch.load(best, weights_only=True)["epoch"]
    alone = single_device_validation(task, settings, best)
    together = first["val_metrics"][epoch]
    assert set(together) <= set(alone)
    for key, value in together.items():
        assert alone[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, alone[key], value)


def torchrun_node(node_rank: int, port: int, folder: Path, task: str, *args: str) -> subprocess.Popen:
    """One node of a 2-node torchrun job on 127.0.0.1, in a folder of its own (as if on another machine)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=lstm-suite-test-{port}",
               "--max-restarts=0", "-m", "tasks", "train", task, "--config", str(REPO / "configs/trainer/nodes.yaml"),
               "--trainer.accelerator=cpu", "--trainer.precision=32-true", "--run.root=runs", *args]
    log = open(folder / "log.txt", "w")
    return subprocess.Popen(command, cwd=folder, env=child_env(folder / "home"), stdout=log, stderr=subprocess.STDOUT)


def wait_all(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def test_two_torchrun_nodes_train_together_without_a_shared_folder(tmp_path):
    settings = tiny("forecast", tmp_path / "data")
    port, out = free_port(), tmp_path / "probe"
    args = [*train_command("forecast", settings, "--trainer.max_epochs=2"), "--run.wandb=off", probe(out)]
    nodes = [torchrun_node(rank, port, tmp_path / f"node{rank}", "forecast", *args) for rank in (0, 1)]
    codes = wait_all(nodes, timeout=240)
    logs = [(tmp_path / f"node{rank}" / "log.txt").read_text() for rank in (0, 1)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    first, second = records(out)
    assert (first["world"], second["rank"]) == (2, 1)
    assert first["run_dir"] == second["run_dir"]
    assert len(list((tmp_path / "node0" / "runs" / "forecast").iterdir())) == 1  # one run folder, on node 0
    assert not (tmp_path / "node1" / "runs").exists()  # node 1 wrote nothing of its own
    # node 1 tested the best checkpoint, which only node 0 has: it was read there and sent over
    assert first["test_metrics"] == second["test_metrics"] and "test/mse" in first["test_metrics"]
    for mine, theirs in zip(first["train"], second["train"]):
        assert len(mine) == len(theirs) and not set(flat(mine)) & set(flat(theirs))


@pytest.mark.parametrize("failing", [0])  # rank 0 failing is the case that hung; rank 1 failing: measured to end too
def test_a_failing_rank_ends_the_run_instead_of_hanging_it(failing, tmp_path):
    settings = tiny("forecast", tmp_path / "data")
    port = free_port()
    args = [*train_command("forecast", settings, "--trainer.max_epochs=50"), "--run.wandb=off",
            probe(tmp_path, "RaiseOnRank", rank=failing, step=3)]
    nodes = [torchrun_node(rank, port, tmp_path / f"node{rank}", "forecast", *args) for rank in (0, 1)]
    codes = wait_all(nodes, timeout=180)  # before: rank 0 saved with a barrier that waited for the dead rank
    assert all(code not in (0, None) for code in codes), codes  # both ended, with an error
    assert f"planned failure on rank {failing}" in (tmp_path / f"node{failing}" / "log.txt").read_text()
    assert list((tmp_path / "node0" / "runs" / "forecast").glob("*/checkpoints/interrupted.ckpt"))  # work kept


def test_bf16_mixed_precision_and_gradient_accumulation_train(tmp_path):
    """The presets' precision and accumulation options, on CPU (autocast to bfloat16)."""
    settings = tiny("music", tmp_path / "data")
    result = train(get_task("music"), [*train_command("music", settings, "--trainer.max_epochs=2"),
                                       "--trainer.precision=bf16-mixed", "--trainer.accumulate_grad_batches=2",
                                       f"--run.root={tmp_path / 'runs'}", "--run.wandb=off"])
    assert result.trainer.precision == "bf16-mixed" and result.trainer.accumulate_grad_batches == 2
    batches = len(result.trainer.datamodule.train_dataloader())
    assert result.trainer.global_step == 2 * -(-batches // 2)  # 2 epochs of one optimiser step per 2 batches
    assert torch.isfinite(torch.tensor(result.metrics["test/nll"]))
