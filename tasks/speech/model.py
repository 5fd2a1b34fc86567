"""Speech recognition: log-mel features -> 4x subsampling -> LSTM encoder -> CTC."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.text import CharErrorRate, WordErrorRate

from tasks.common.optim import adamw_with_budget_decay, adamw_with_plateau, check_optimiser_settings
from tasks.speech.audio import log_mel, read_audio
from tasks.speech.decoding import BeamDecoder, BeamOptions, beam_search_available
from tasks.speech.network import CTCAcousticModel, greedy_ctc
from tasks.speech.tuning import DecoderChoice, choose_decoder, record_decoder_choice
from tasks.speech.vocab import BLANK, CharVocab, load_vocab


class SpeechModel(L.LightningModule):
    """CTC speech recognizer; checkpoints carry the vocabulary, so a checkpoint alone transcribes.

    Args:
        vocab_size: linked from the data (labels + the CTC blank).
        n_mels: linked from the data (log-mel bands per frame).
        hidden_size, num_layers, dropout: the LSTM encoder (hidden_size / 2 per direction when bidirectional).
        bidirectional: False gives a streaming-capable left-to-right encoder.
        subsampling: stack (4 frames concatenated, fastest) or conv (two strided 3x3 convolutions); the data
            module gets the same, to skip clips too short for their labels after it.
        lr, weight_decay: AdamW's peak learning rate and weight decay.
        lr_schedule: "budget" (warm up over warmup_steps, then decay linearly to zero when max_time or the step
            budget runs out: best for time-boxed runs) or "plateau" (halve after lr_patience stalled validations).
        decoder: how the test split and `transcribe` decode: "beam" (torchaudio's CTC beam search over the words
            of the training transcripts, scored by their n-gram LM; needs flashlight-text) or "greedy".
            Validation is always greedy (fast); test reports both, test/wer being this decoder's.
        beam_size, lm_weight, word_score: the beam search (see tasks.speech.decoding.BeamOptions).
        tune_decoder: once training ends, decode the validation clips greedily and with a small grid of lm_weight
            and word_score (tasks/speech/tuning.py); the best setting, or greedy if no beam setting validates at
            least as well, is what test and `transcribe` use, written into the tested checkpoint.
        vocab_json: set from the data when training starts; do not set by hand.
    """

    monitor, monitor_mode = "val/wer", "min"

    def __init__(
        self,
        *,
        vocab_size: int,
        n_mels: int = 80,
        hidden_size: int = 320,
        num_layers: int = 3,
        bidirectional: bool = True,
        dropout: float = 0.2,
        subsampling: Literal["stack", "conv"] = "stack",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["budget", "plateau"] = "plateau",
        warmup_steps: int = 100,
        lr_patience: int = 2,
        decoder: Literal["greedy", "beam"] = "beam",
        beam_size: int = 50,
        lm_weight: float = 0.5,
        word_score: float = 0.0,
        tune_decoder: bool = True,
        vocab_json: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        self.net = CTCAcousticModel(n_mels=n_mels, vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                                    bidirectional=bidirectional, dropout=dropout, subsampling=subsampling)
        self.ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
        self.vocab = load_vocab(vocab_json) if vocab_json else None
        self.val_wer, self.val_cer, self.val_loss = WordErrorRate(), CharErrorRate(), MeanMetric()
        self.test_wer, self.test_cer = WordErrorRate(), CharErrorRate()
        self.test_wer_greedy = WordErrorRate()
        self.beam_files: dict[str, str] = {}  # {"lexicon": text, "lm": ARPA text}: kept in every checkpoint
        self._beam: Optional[BeamDecoder] = None
        self.decoder_choice: Optional[DecoderChoice] = None  # set by tune_decoder, kept in the checkpoint
        self.examples: list[tuple[str, str, str]] = []  # (audio file, reference, transcript) of the last validation

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is not None and getattr(datamodule, "vocab", None) is not None:
            self.vocab = datamodule.vocab
            self.hparams.vocab_json = self.vocab.to_json()  # inside every checkpoint from now on
        if datamodule is not None and hasattr(datamodule, "beam_search_files"):
            self.beam_files = datamodule.beam_search_files()
            self._beam = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["beam_search_files"] = self.beam_files  # plain strings: still loads with weights_only=True
        if self.decoder_choice is not None:
            checkpoint["decoder_choice"] = self.decoder_choice.as_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.beam_files = checkpoint.get("beam_search_files", {})
        self._beam = None
        if "decoder_choice" in checkpoint:
            self.decoder_choice = DecoderChoice(**checkpoint["decoder_choice"])

    def configure_beam(self, **overrides) -> BeamDecoder:
        """Build the beam search this checkpoint was trained for and use it from now on.

        overrides: BeamOptions fields, e.g. lm="big.arpa", lexicon=..., beam_size=...; None keeps the checkpoint's.
        """
        h = self.hparams
        options = dict(beam_size=h.beam_size, lm_weight=h.lm_weight, word_score=h.word_score)
        with tempfile.TemporaryDirectory() as folder:  # flashlight reads files; it keeps what it needs in memory
            for name, text in self.beam_files.items():
                options[name] = str(Path(folder) / name)
                Path(options[name]).write_text(text, encoding="utf-8")
            options.update({k: v for k, v in overrides.items() if v is not None})
            self._beam = BeamDecoder(self.vocab, BeamOptions(**options))
        return self._beam

    def decode(self, log_probs: Tensor, lengths: Tensor, decoder: Optional[str] = None) -> list[str]:
        """log_probs (B, T', V), lengths (B,) -> transcripts, greedily or with the beam search."""
        if (decoder or self.hparams.decoder) == "beam":
            beam = self._beam or self.configure_beam()
            return beam(log_probs, lengths)
        return [self.vocab.decode(ids) for ids in greedy_ctc(log_probs, lengths)]

    def loss(self, batch) -> tuple[Tensor, Tensor, Tensor]:
        log_probs, lengths = self.net(batch.features, batch.feature_lengths)  # (B, T', V)
        loss = self.ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
        return loss, log_probs, lengths

    def training_step(self, batch, batch_idx):
        loss, _, _ = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.index))
        return loss

    def _score(self, batch, split: str, wer: WordErrorRate, cer: CharErrorRate) -> Tensor:
        loss, log_probs, lengths = self.loss(batch)
        utterances = [self.trainer.datamodule.utterances[split][i] for i in batch.index.tolist()]
        references = [u.text for u in utterances]
        hypotheses = self.decode(log_probs, lengths, "greedy")
        if split == "test":
            self.test_wer_greedy.update(hypotheses, references)
            self.log("test/wer_greedy", self.test_wer_greedy)
            if self.hparams.decoder == "beam":
                hypotheses = self.decode(log_probs, lengths, "beam")
        wer.update(hypotheses, references)
        cer.update(hypotheses, references)
        if split == "val" and len(self.examples) < 16:
            self.examples += [(u.audio, u.text, h) for u, h in zip(utterances, hypotheses)][: 16 - len(self.examples)]
        self.log(f"{split}/wer", wer, prog_bar=split == "val")
        self.log(f"{split}/cer", cer)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.examples = []

    def validation_step(self, batch, batch_idx):
        # A metric object, not a logged number: its sums are synced exactly across processes (Lightning's
        # sync_dist averages the batch counts as integers), and the plateau schedule follows it on every rank.
        self.val_loss.update(self._score(batch, "val", self.val_wer, self.val_cer), len(batch.index))
        self.log("val/loss", self.val_loss)

    def on_test_start(self) -> None:
        if self.hparams.decoder != "beam":
            return
        if not isinstance(self.vocab, CharVocab):
            rank_zero_warn("test: beam search decodes character vocabularies; decoding subwords greedily")
            self.hparams.decoder = "greedy"
        elif not beam_search_available():
            rank_zero_warn("test: beam search needs flashlight-text (pip install flashlight-text); decoding greedily")
            self.hparams.decoder = "greedy"
        elif self.hparams.tune_decoder and self.trainer.datamodule is not None:
            self.tune_decoder()

    def tune_decoder(self) -> DecoderChoice:
        """Choose the decoder on the validation clips (see tune_decoder in the class docstring) and write it into
        the checkpoint under test, so `transcribe` decodes as validated."""
        data = self.trainer.datamodule
        utterances = data.utterances["val"]
        choice = choose_decoder(self, data.val_dataloader(), lambda batch: [utterances[i].text for i in batch.index.tolist()])
        self.decoder_choice = choice
        self.hparams.update(decoder=choice.decoder, lm_weight=choice.lm_weight, word_score=choice.word_score)
        self._beam = None  # rebuilt with the chosen setting
        rank_zero_info(choice.describe())
        path = self.trainer.ckpt_path
        if path and self.trainer.is_global_zero:
            record_decoder_choice(path, choice)
        return choice

    def on_test_epoch_end(self) -> None:
        if self.decoder_choice is not None:
            self.log_dict({"test/decoder_val_wer_greedy": self.decoder_choice.val_wer_greedy,
                           "test/decoder_val_wer_beam": self.decoder_choice.val_wer_beam,
                           "test/decoder_beam_chosen": float(self.decoder_choice.decoder == "beam")})

    def test_step(self, batch, batch_idx):
        self._score(batch, "test", self.test_wer, self.test_cer)

    def configure_optimizers(self):
        h = self.hparams
        if h.lr_schedule == "budget":
            return adamw_with_budget_decay(self, h.lr, h.weight_decay, h.warmup_steps)
        return adamw_with_plateau(self, h.lr, h.weight_decay, h.lr_patience)

    @torch.no_grad()
    def transcribe_features(self, features: list[Tensor], decoder: Optional[str] = None) -> list[str]:
        """features: one (T, n_mels) tensor per utterance -> transcripts (decoder: greedy or beam, default hparams)."""
        self.eval()
        lengths = torch.tensor([len(f) for f in features], device=self.device)
        padded = nn.utils.rnn.pad_sequence(features, batch_first=True).to(self.device)
        log_probs, out_lengths = self.net(padded, lengths)
        return self.decode(log_probs, out_lengths, decoder)

    def transcribe(self, paths: list[str], decoder: Optional[str] = None) -> list[str]:
        """Audio files (any rate, any channels) -> transcripts."""
        return self.transcribe_features([log_mel(read_audio(p), self.hparams.n_mels) for p in paths], decoder)
