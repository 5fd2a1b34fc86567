"""What a person wants to see in wandb while translation trains: sample translations and attention."""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from tasks.translation.tokenizer import BOS, EOS, encode


def attention_png(model, source: str, path: Path) -> Path:
    """Greedy-translate `source`, then draw which source subwords each output subword attended to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokenizer = model.tokenizer
    src_ids = encode(tokenizer, source) + [EOS]
    src = torch.tensor([src_ids], device=model.device)
    lengths = torch.tensor([len(src_ids)], device=model.device)
    out_ids = [i for i in model.generate(src, lengths, beam_size=1)[0] if i != 0]
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
        weights = model.decoder(torch.tensor([[BOS] + out_ids[:-1]], device=model.device), state, memory).attention[0]
    src_tokens = [tokenizer.id_to_token(i) for i in src_ids]
    out_tokens = [tokenizer.id_to_token(i) for i in out_ids]
    fig, ax = plt.subplots(figsize=(2 + 0.35 * len(src_tokens), 1.5 + 0.3 * len(out_tokens)), dpi=100)
    ax.imshow(weights.cpu().numpy(), cmap="Greys", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(out_tokens)), out_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class LogTranslations(Callback):
    """At validation end: a wandb table of `num` sample translations and an attention heatmap."""

    def __init__(self, num: int = 10):
        self.num = num

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        examples = getattr(pl_module, "examples", None)
        if trainer.sanity_checking or not examples or not trainer.is_global_zero or not isinstance(trainer.logger, WandbLogger):
            return
        rows = [list(e) for e in examples[: self.num]]
        trainer.logger.log_table("val/translations", columns=["source", "reference", "translation"], data=rows,
                                 step=trainer.global_step)
        folder = Path(trainer.default_root_dir) / "attention"
        folder.mkdir(parents=True, exist_ok=True)
        png = attention_png(pl_module, examples[0][0], folder / f"epoch_{trainer.current_epoch:03d}.png")
        trainer.logger.log_image("val/attention", [str(png)], step=trainer.global_step, caption=[examples[0][0]])
