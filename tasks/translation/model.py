"""Translation: a bidirectional LSTM encoder and an attention LSTM decoder over shared subwords."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import lightning as L
import sacrebleu
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric

from core import DecoderState, LSTMDecoder, LSTMEncoder, Memory, beam_search, greedy
from tasks.common.distributed import gather_objects
from tasks.common.optim import adamw_with_plateau, check_optimiser_settings
from tasks.translation.tokenizer import BOS, EOS, PAD, decode, encode, load_tokenizer, save_tokenizer, tokenizer_to_json


class TranslationModel(L.LightningModule):
    """Luong-style attention seq2seq; checkpoints carry the tokenizer, so a checkpoint alone translates.

    Args:
        vocab_size: linked from the data (the subword vocabulary, shared by both languages).
        embedding_dim, hidden_size, num_layers, dropout: encoder and decoder; the encoder is
            bidirectional with hidden_size / 2 per direction, and its final states start the decoder.
        attention: dot, general or additive.
        input_feeding: feed the previous attentional vector into the next decoder step.
        tie_embeddings: the decoder predicts with its own input embedding matrix.
        label_smoothing: of the training cross-entropy (validation loss is unsmoothed).
        lr, weight_decay, lr_patience: AdamW, learning rate halved after lr_patience stalled validations.
        beam_size, length_penalty: decoding for test and `translate` (GNMT length penalty alpha).
        max_len_ratio, max_len_offset: output length limit = ratio * source length + offset.
        val_bleu_sentences, val_beam_size: how many validation sentences are decoded for val/bleu, and how.
        tokenizer_json: set from the data when training starts; do not set by hand.
    """

    monitor, monitor_mode = "val/bleu", "max"

    def __init__(
        self,
        *,
        vocab_size: int,
        embedding_dim: int = 256,
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.3,
        attention: Literal["dot", "general", "additive"] = "general",
        input_feeding: bool = True,
        tie_embeddings: bool = True,
        label_smoothing: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        lr_patience: int = 2,
        beam_size: int = 5,
        length_penalty: float = 0.6,
        max_len_ratio: float = 1.5,
        max_len_offset: int = 10,
        val_bleu_sentences: int = 500,
        val_beam_size: int = 1,
        tokenizer_json: Optional[str] = None,
    ):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two encoder directions of hidden_size / 2), got {hidden_size}")
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        self.encoder = LSTMEncoder(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size // 2,
                                   num_layers=num_layers, bidirectional=True, dropout=dropout, padding_idx=PAD)
        self.decoder = LSTMDecoder(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                                   num_layers=num_layers, dropout=dropout, attention=attention, memory_size=hidden_size,
                                   input_feeding=input_feeding, tie_embeddings=tie_embeddings, padding_idx=PAD)
        self.tokenizer = load_tokenizer(tokenizer_json) if tokenizer_json else None
        self.val_loss = MeanMetric()
        self.decoded: list[tuple[int, str]] = []  # (index in the split, translation) of this evaluation

    # --- the network -------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Memory, DecoderState]:
        """src (B, S) -> memory over the source, and the decoder's first state from the encoder's last."""
        out = self.encoder(src, src_lengths)
        h, c = self.encoder.bridge(out.state)  # (L, B, H): both directions' final states, side by side
        feed = h.new_zeros(src.shape[0], self.hparams.hidden_size) if self.hparams.input_feeding else None
        return Memory.from_lengths(out.outputs, src_lengths), DecoderState(h, c, feed)

    def forward(self, batch):
        memory, state = self.encode(batch.src, batch.src_lengths)
        return self.decoder(batch.tgt[:, :-1], state, memory)  # logits (B, T-1, V), state, attention

    @torch.inference_mode()  # no autograd bookkeeping: at batch 1 a decoding step is mostly per-operation overhead
    def generate(self, src: Tensor, src_lengths: Tensor, beam_size: int) -> list[list[int]]:
        """Batched beam search (or greedy for beam_size 1) -> token ids per sentence."""
        memory, state = self.encode(src, src_lengths)
        max_len = int(self.hparams.max_len_ratio * int(src_lengths.max())) + self.hparams.max_len_offset
        start = torch.full((src.shape[0],), BOS, device=src.device)
        if beam_size > 1:
            out = beam_search(self.decoder, start, max_len, beam_size=beam_size, eos=EOS, pad=PAD, state=state,
                              memory=memory, alpha=self.hparams.length_penalty)
        else:
            out = greedy(self.decoder, start, max_len, state=state, memory=memory, eos=EOS, pad=PAD, score=False)
        return out.tokens.tolist()

    # --- training and evaluation -------------------------------------------------------------------
    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is not None and getattr(datamodule, "tokenizer", None) is not None:
            self.tokenizer = datamodule.tokenizer
            self.hparams.tokenizer_json = tokenizer_to_json(self.tokenizer)  # inside every checkpoint from now on
            if self.trainer.is_global_zero:  # and beside them, for tools that want the file
                folder = Path(self.trainer.default_root_dir) / "checkpoints"
                folder.mkdir(parents=True, exist_ok=True)
                save_tokenizer(self.tokenizer, folder / "tokenizer.json")

    def loss(self, batch, label_smoothing: Optional[float] = None) -> Tensor:
        """Teacher-forced cross-entropy per target token (label smoothing of training by default)."""
        smoothing = self.hparams.label_smoothing if label_smoothing is None else label_smoothing
        logits = self(batch).logits  # (B, T-1, V)
        return F.cross_entropy(logits.transpose(1, 2), batch.tgt[:, 1:], ignore_index=PAD, label_smoothing=smoothing)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=int((batch.tgt[:, 1:] != PAD).sum()))
        return loss

    def validation_step(self, batch, batch_idx):
        self.val_loss.update(self.loss(batch, label_smoothing=0.0), (batch.tgt[:, 1:] != PAD).sum())
        self.log("val/loss", self.val_loss, prog_bar=True)
        wanted = batch.index < self.hparams.val_bleu_sentences
        if wanted.any():
            self._decode_for_scores(batch, wanted, "val", self.hparams.val_beam_size)

    def test_step(self, batch, batch_idx):
        self._decode_for_scores(batch, torch.ones_like(batch.index, dtype=torch.bool), "test", self.hparams.beam_size)

    def _decode_for_scores(self, batch, wanted: Tensor, split: str, beam_size: int) -> None:
        ids = self.generate(batch.src[wanted], batch.src_lengths[wanted], beam_size)
        self.decoded += [(i, decode(self.tokenizer, hyp)) for i, hyp in zip(batch.index[wanted].tolist(), ids)]

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def _log_scores(self, split: str) -> None:
        # Every process decoded its share: one corpus score over all of them (BLEU of parts cannot be averaged),
        # in the split's order, so it is the same number on every rank and on a single device.
        decoded = sorted(pair for part in gather_objects(self.decoded) for pair in part)
        self.decoded = []
        if not decoded:
            return
        pairs = self.trainer.datamodule.pairs[split]
        sources, references = ([pairs[i][side] for i, _ in decoded] for side in (0, 1))
        hypotheses = [hyp for _, hyp in decoded]
        # sacreBLEU on detokenized, cased text: the number papers report
        self.log(f"{split}/bleu", sacrebleu.corpus_bleu(hypotheses, [references]).score, prog_bar=True, sync_dist=True)
        self.log(f"{split}/chrf", sacrebleu.corpus_chrf(hypotheses, [references]).score, sync_dist=True)
        self.examples = list(zip(sources, references, hypotheses))

    def configure_optimizers(self):
        return adamw_with_plateau(self, self.hparams.lr, self.hparams.weight_decay, self.hparams.lr_patience)

    # --- use ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, texts: list[str], beam_size: Optional[int] = None, batch_size: int = 64, progress=None) -> list[str]:
        """Translate sentences in length-sorted batches; the order of the output matches `texts`."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer: it was not trained through its datamodule")
        was_training = self.training
        self.eval()
        encoded = [encode(self.tokenizer, t) + [EOS] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        results: list[str] = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            lengths = torch.tensor([len(encoded[i]) for i in chunk], device=self.device)
            src = torch.full((len(chunk), int(lengths.max())), PAD, device=self.device)
            for row, i in enumerate(chunk):
                src[row, : len(encoded[i])] = torch.tensor(encoded[i])
            for i, ids in zip(chunk, self.generate(src, lengths, beam_size or self.hparams.beam_size)):
                results[i] = decode(self.tokenizer, ids)
            if progress is not None:
                progress.update(len(chunk))
        self.train(was_training)
        return results
