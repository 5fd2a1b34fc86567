"""The arithmetic of `make bench` (bench/task_speed.py, bench/suite.py): what its table would say wrong if it broke."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.suite import table  # noqa: E402
from bench.task_speed import Epoch, examples_in, rates, shares, without_schedulers  # noqa: E402
from tasks.translation.data import Batch  # noqa: E402


def test_a_cut_epoch_is_scaled_to_a_whole_one_paying_its_fixed_costs_once():
    # 10 of 100 batches: 0.5 s waiting for them, 1.5 s of steps; 1 of 5 validation batches in 0.5 s; 1 s of checkpoints
    epoch = Epoch(loading=0.5, steps=1.5, validation=0.5, rest=1.0, examples=320, batches=10, val_batches=1)
    assert epoch.rate(100, 5) == pytest.approx(3200 / (5 + 15 + 2.5 + 1))
    assert epoch.rate() == pytest.approx(320 / 3.5)  # as run
    assert rates([1.0, 3.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    # the same 10 batches took 1.2 s of steps alone: the whole epoch's 15 s of steps are 12 s of model, 3 of hooks
    split = shares(epoch, Epoch(steps=1.2, examples=320, batches=10), 100, 5)
    assert split == pytest.approx({"model": 12 / 23.5, "loading": 5 / 23.5, "step overhead": 3 / 23.5,
                                   "validation": 2.5 / 23.5, "epoch end": 1 / 23.5})


def test_examples_are_counted_per_task_batch_kind():
    tokens = torch.zeros(16, 40, dtype=torch.long)
    assert examples_in((tokens, torch.full((16,), 40))) == 16  # music: (tokens, lengths)
    pairs = Batch(torch.zeros(8, 5), torch.zeros(8), torch.zeros(8, 6), torch.zeros(8), torch.arange(8))
    assert examples_in(pairs) == 8
    epoch = [(torch.zeros(32, 52, 1), torch.zeros(32, 1)), (torch.zeros(7, 52, 1), torch.zeros(7, 1))]
    assert examples_in(epoch) == 39  # forecast: one step is a list of batches


@pytest.mark.parametrize("config", ["dict", "lists", "alone"])
def test_model_only_runs_keep_the_optimiser_and_drop_the_schedule(config):
    model = torch.nn.Linear(2, 2)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, 1)
    given = {"dict": {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}},
             "lists": ([optimiser], [scheduler]), "alone": optimiser}[config]
    model.configure_optimizers = lambda: given
    without_schedulers(model)
    assert model.configure_optimizers() in (optimiser, [optimiser])


def test_the_table_shows_each_task_and_names_a_failure():
    row = {"median": 100.0, "min": 90.0, "max": 110.0}
    done = {"task": "music", "end_to_end": row, "model_only": {**row, "median": 125.0}, "efficiency": 0.8,
            "shares": {"model": 0.8, "validation": 0.15, "epoch end": 0.05},
            "peak_rss_mib": 2048.0, "inference": {"events/s, batch 1": row}}
    text = table([done, {"task": "speech", "error": "exit 1: boom"}], {"speech: no lengths": row})
    assert "| music | 100.0 (90.0-110.0) | 125.0 (90.0-110.0) | **0.80** | validation 15%, epoch end 5% | 2.00 GiB | events/s, batch 1 100 (90-110) |" in text
    assert "| speech | failed: exit 1: boom |" in text
    assert "| speech: no lengths | 100.00 (90.00-110.00) |" in text


def test_a_task_skipped_for_want_of_its_data_is_shown_and_does_not_fail_make_bench(monkeypatch, tmp_path, capsys):
    from bench import suite

    monkeypatch.setattr(suite, "REPO", tmp_path)
    monkeypatch.setattr(suite, "RESULTS", tmp_path / "suite.json")
    monkeypatch.setattr(suite.encoder_parity, "measure", lambda: {})
    monkeypatch.setattr(suite, "run_task", lambda task, *rest: {"task": task, "error": "exit 1: boom"})
    assert suite.main(["music-pianoroll", "--jsb", ""]) == 0  # no JSB file: skipped, not run
    assert "| music-pianoroll | skipped: it needs the JSB Chorales split" in capsys.readouterr().out
    assert suite.main(["music-pianoroll", "forecast", "--jsb", ""]) == 1  # a task that ran and failed still fails it
