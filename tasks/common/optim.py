"""The optimiser setups the tasks share: AdamW, with the learning rate halved when the validation loss stalls,
or decayed to zero over the run's budget (for runs cut off by `max_time`)."""
from __future__ import annotations

import math

import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage

from tasks.common.errors import InputError


def check_optimiser_settings(lr: float, weight_decay: float) -> None:
    """Every model calls this in __init__, so a bad value stops `train` at startup, not after the data is prepared
    (where torch.optim would raise it as a traceback)."""
    for name, value in (("lr", lr), ("weight_decay", weight_decay)):
        if not value >= 0:  # (NaN too)
            raise InputError(f"--model.{name}={value}: must be at least 0")


def adamw_with_plateau(module: LightningModule, lr: float, weight_decay: float, patience: int,
                       loss: str = "val/loss") -> dict:
    """The schedule follows a validation *loss* (always lower-is-better), not the checkpoint metric:
    BLEU rises when things go well, and WER sits at 1.0 while CTC is still learning to emit anything."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=patience)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": loss}}


def adamw_with_budget_decay(module: LightningModule, lr: float, weight_decay: float, warmup_steps: int) -> dict:
    """Linear warm-up over `warmup_steps`, then linear decay to zero when the budget runs out: `max_time`, or the
    steps of `max_steps` / `max_epochs`, whichever comes first. Ending at zero is what a time-boxed run gains most
    from (Li et al. 2020, "Budgeted training"); a plateau schedule may never fire within the budget."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        trainer = module._trainer  # None outside fit (a benchmark driving the optimiser itself): no decay
        return warm * (1.0 - budget_spent(trainer) if trainer is not None else 1.0)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def budget_spent(trainer: Trainer) -> float:
    """How much of the training budget is used, 0..1: the larger of the share of steps and the share of max_time."""
    shares = [0.0]
    total_steps = trainer.estimated_stepping_batches
    if math.isfinite(total_steps) and total_steps > 0:
        # a model that steps its optimiser itself may step several times per batch: count its batches instead
        module = getattr(trainer, "lightning_module", None)
        manual = module is not None and not module.automatic_optimization
        done = trainer.fit_loop.epoch_loop.batch_progress.total.completed if manual else trainer.global_step
        shares.append(done / total_steps)
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # there when max_time is set
    remaining = timer.time_remaining(RunningStage.TRAINING) if timer is not None else None
    if remaining is not None:
        elapsed = timer.time_elapsed(RunningStage.TRAINING)
        shares.append(elapsed / max(elapsed + remaining, 1e-9))
    return min(1.0, max(shares))
