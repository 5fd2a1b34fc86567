"""Listen while it trains: sampled melodies at the end of validation, with their statistics."""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from tasks.music.encoding import STEPS_PER_QUARTER, write_midi
from tasks.music.metrics import compare, profile
from tasks.music.render import melody_roll, piano_roll_png, render_wav


class LogSampledMelodies(Callback):
    """Every `every_n_epochs`, sample `num` melodies of `length` 16ths and log their statistics next to the same
    statistics of the held-out (validation) pieces (samples/in_key beside samples/reference_in_key, ...; and
    samples/interval_distance between their interval histograms); to wandb also their piano rolls and (with
    fluidsynth) audio. Files are kept in <run>/samples/epoch_NNN."""

    def __init__(self, num: int = 4, length: int = 128, every_n_epochs: int = 1, temperature: float = 1.0):
        self.num, self.length, self.every_n_epochs, self.temperature = num, length, every_n_epochs, temperature

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        melodies = pl_module.generate(self.num, self.length, temperature=self.temperature, seed=trainer.current_epoch)
        splits = getattr(trainer.datamodule, "splits", None)
        if pl_module.reference_profile is None and splits:  # once: the held-out pieces do not change
            pl_module.reference_profile = profile(splits["val"])
        sampled = profile(melodies)
        stats = compare(sampled, pl_module.reference_profile) if pl_module.reference_profile else sampled
        for key, value in stats.items():
            if key != "intervals":
                pl_module.log(f"samples/{key}", float(value))
        if not trainer.is_global_zero or not isinstance(trainer.logger, WandbLogger):
            return
        folder = Path(trainer.default_root_dir) / "samples" / f"epoch_{trainer.current_epoch:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        images, audio, captions = [], [], []
        for i, events in enumerate(melodies):
            stem = folder / f"melody_{i + 1:02d}"
            captions.append(f"epoch {trainer.current_epoch}, melody {i + 1}")
            images.append(str(piano_roll_png(melody_roll(events), stem.with_suffix(".png"), captions[-1], steps_per_quarter=STEPS_PER_QUARTER)))
            wav = render_wav(write_midi(events, stem.with_suffix(".mid")), stem.with_suffix(".wav"))
            if wav is not None:
                audio.append(str(wav))
        trainer.logger.log_image("samples/piano_roll", images, step=trainer.global_step, caption=captions)
        if audio:
            trainer.logger.log_audio("samples/audio", audio, step=trainer.global_step, caption=captions[: len(audio)])
