"""The optimiser setup the tasks share: AdamW, learning rate halved when validation stalls."""
from __future__ import annotations

import torch
from lightning import LightningModule


def adamw_with_plateau(module: LightningModule, lr: float, weight_decay: float, patience: int) -> dict:
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": module.monitor}}
