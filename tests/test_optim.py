"""The shared learning-rate schedules: decay to zero over a step budget or a time budget."""
from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from tasks.common.optim import adamw_with_budget_decay, budget_spent

PEAK, WARMUP, STEPS = 0.01, 5, 40


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.rates: list[float] = []

    def training_step(self, batch, batch_idx):
        self.rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return adamw_with_budget_decay(self, PEAK, 0.0, WARMUP)


def test_budget_decay_warms_up_then_falls_to_zero_at_the_last_step():
    data = torch.utils.data.TensorDataset(torch.randn(64, 3), torch.randn(64, 1))
    model = Regression()
    trainer = L.Trainer(max_steps=STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=8))
    rates = model.rates
    assert len(rates) == STEPS
    assert rates[0] < rates[WARMUP - 2] < rates[WARMUP]  # warming up
    assert all(a >= b for a, b in zip(rates[WARMUP:], rates[WARMUP + 1 :]))  # then never rising
    assert math.isclose(rates[STEPS // 2], PEAK / 2, rel_tol=0.1)  # linear: half-way, half the peak
    assert rates[-1] < PEAK * 0.05


def test_budget_spent_follows_max_time_when_it_runs_out_first():
    timer = Timer(duration="00:00:01:40")  # 100 s
    timer.load_state_dict({"time_elapsed": {"train": 25.0}})  # as when resuming a run 25 s in
    trainer = SimpleNamespace(estimated_stepping_batches=1000, global_step=100, callbacks=[timer])
    assert math.isclose(budget_spent(trainer), 0.25, abs_tol=0.01)  # time (25%) is ahead of steps (10%)
    trainer.global_step = 500
    assert math.isclose(budget_spent(trainer), 0.5)
    trainer.callbacks, trainer.estimated_stepping_batches = [], float("inf")  # no budget at all: no decay
    assert budget_spent(trainer) == 0.0


class ThreeStepsPerBatch(Regression):
    """Steps its optimiser itself, three times per batch (as the piano-roll model does, once per window)."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer, x, y = self.optimizers(), *batch
        for _ in range(3):
            self.rates.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad()
            self.manual_backward(torch.nn.functional.mse_loss(self.layer(x), y))
            optimizer.step()
            self.lr_schedulers().step()


def test_budget_decay_counts_batches_when_the_model_steps_several_times_per_batch():
    data = torch.utils.data.TensorDataset(torch.randn(64, 3), torch.randn(64, 1))
    model = ThreeStepsPerBatch()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=8))  # 16 batches, 48 steps
    rates = model.rates
    assert len(rates) == 48
    assert math.isclose(rates[24], PEAK / 2, rel_tol=0.15)  # half the batches: half the peak, not already zero
    assert 0 < rates[-1] < PEAK * 0.1
