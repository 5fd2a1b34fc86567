"""What a person wants to see in wandb while speech trains: transcripts next to the audio they came from."""
from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger


class LogTranscripts(Callback):
    """At validation end: a wandb table of `num` clips with an audio player, reference and transcript."""

    def __init__(self, num: int = 8):
        self.num = num

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not pl_module.examples or not trainer.is_global_zero:
            return
        if not isinstance(trainer.logger, WandbLogger):
            return
        import wandb

        rows = [[wandb.Audio(audio), reference, transcript] for audio, reference, transcript in pl_module.examples[: self.num]]
        trainer.logger.log_table("val/transcripts", columns=["audio", "reference", "transcript"], data=rows,
                                 step=trainer.global_step)
