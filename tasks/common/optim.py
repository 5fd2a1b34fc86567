"""The optimiser setup the tasks share: AdamW, learning rate halved when the validation loss stalls."""
from __future__ import annotations

import torch
from lightning import LightningModule


def adamw_with_plateau(module: LightningModule, lr: float, weight_decay: float, patience: int,
                       loss: str = "val/loss") -> dict:
    """The schedule follows a validation *loss* (always lower-is-better), not the checkpoint metric:
    BLEU rises when things go well, and WER sits at 1.0 while CTC is still learning to emit anything."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=patience)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": loss}}
