"""What a person wants to see while video trains: which classes get mistaken for which."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger


def confusion_png(matrix: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    """A K x K count matrix (rows: true class, columns: predicted) drawn with the counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = len(names)
    rows = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))  # colour by the share of each true class
    side = 2.5 + 0.32 * K
    fig, ax = plt.subplots(figsize=(side + 1, side), dpi=100)
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if K <= 30:
        ax.set_xticks(range(K), names, rotation=90, fontsize=8)
        ax.set_yticks(range(K), names, fontsize=8)
        for i in range(K):
            for j in range(K):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class LogConfusionMatrix(Callback):
    """At the end of validation (and of testing): the confusion matrix as an image in wandb, kept also as
    <run>/confusion/<split>_epoch_NNN.png. Nothing without a wandb logger."""

    def _log(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        if trainer.sanity_checking or not isinstance(trainer.logger, WandbLogger):
            return
        matrix = getattr(pl_module, f"{split}_confusion").compute().cpu().numpy()  # a collective: on every rank
        if not trainer.is_global_zero or not matrix.sum():
            return
        folder = Path(trainer.default_root_dir) / "confusion"
        folder.mkdir(parents=True, exist_ok=True)
        accuracy = np.trace(matrix) / matrix.sum()
        title = f"{split}, epoch {trainer.current_epoch}: accuracy {accuracy:.3f}"
        png = folder / f"{split}_epoch_{trainer.current_epoch:03d}.png"
        confusion_png(matrix, pl_module.class_names, png, title)
        trainer.logger.log_image(f"{split}/confusion", [str(png)], step=trainer.global_step, caption=[title])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")
