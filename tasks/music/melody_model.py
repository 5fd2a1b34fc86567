"""A melody language model: the core LSTMDecoder without attention, over 16th-note events."""
from __future__ import annotations

from typing import Optional, Sequence

import lightning as L
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric

from core import LSTMDecoder, greedy, prime, sample
from tasks.common.optim import adamw_with_plateau, check_optimiser_settings
from tasks.music.encoding import MelodyVocab


class MelodyModel(L.LightningModule):
    """Predicts the next melody event; trained with cross-entropy, scored as NLL per event (nats).

    Args:
        vocab_size: linked from the data (number of event tokens).
        min_pitch: linked from the data (MIDI pitch of the first pitch token).
        embedding_dim, hidden_size, num_layers, dropout: the LSTM.
        lr, weight_decay: AdamW.
        lr_patience: epochs without validation gain before the learning rate halves.
    """

    monitor = "val/nll"

    def __init__(
        self,
        *,
        vocab_size: int,
        min_pitch: int = 48,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.3,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        lr_patience: int = 3,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        self.vocab = MelodyVocab(min_pitch, min_pitch + vocab_size - MelodyVocab.SPECIALS - 1)
        self.decoder = LSTMDecoder(
            vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
            num_layers=num_layers, dropout=dropout,
        )
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()
        self.reference_profile: Optional[dict] = None  # statistics of held-out pieces (metrics.profile), for `sample`

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.reference_profile is not None:  # plain floats and lists: still loads with weights_only=True
            checkpoint["reference_profile"] = self.reference_profile

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.reference_profile = checkpoint.get("reference_profile")

    def nll(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """-> mean NLL per predicted event, and how many events were predicted."""
        tokens, _ = batch  # (B, T)
        logits = self.decoder(tokens[:, :-1]).logits  # (B, T-1, V)
        targets = tokens[:, 1:]
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=MelodyVocab.PAD)
        return loss, (targets != MelodyVocab.PAD).sum()

    def training_step(self, batch, batch_idx):
        loss, count = self.nll(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=int(count))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, count = self.nll(batch)
        self.val_nll.update(loss, count)  # weighted by events: the mean over the whole split
        self.log("val/nll", self.val_nll, prog_bar=True)

    def test_step(self, batch, batch_idx):
        loss, count = self.nll(batch)
        self.test_nll.update(loss, count)
        self.log("test/nll", self.test_nll)

    def configure_optimizers(self):
        return adamw_with_plateau(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.lr_patience, loss="val/nll")

    @torch.inference_mode()  # no autograd bookkeeping at all: a batch-1 step is a few microseconds per operation
    def generate(
        self,
        num: int,
        length: int,
        *,
        primer: Optional[Sequence[int]] = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
        greedy_decoding: bool = False,
    ) -> list[list[int]]:
        """Sample `num` melodies of `length` events (16ths) after an optional primer (events).

        The primer is kept at the start of each melody; end-of-piece is never chosen, so every
        melody has exactly len(primer) + length events.
        """
        was_training = self.training
        self.eval()
        vocab = self.vocab
        if primer and not vocab.fits(primer):
            raise ValueError(f"primer has pitches outside this model's range {vocab.min_pitch}..{vocab.max_pitch}")
        prefix = torch.tensor([vocab.BOS] + vocab.encode(primer or []), device=self.device).repeat(num, 1)
        token, state = prime(self.decoder, prefix)
        banned = (vocab.PAD, vocab.BOS, vocab.EOS)
        if greedy_decoding:
            out = greedy(self.decoder, token, length, state=state, banned=banned, score=False)
        else:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed if seed is not None else torch.seed())
            out = sample(self.decoder, token, length, state=state, banned=banned, temperature=temperature,
                         top_k=top_k, top_p=top_p, generator=generator, score=False)
        self.train(was_training)
        return [list(primer or []) + vocab.decode(row) for row in out.tokens.tolist()]
