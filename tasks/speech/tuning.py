"""Choosing how to decode on the validation clips once training ends: greedy, or the beam search with the LM
weight and word score that validated best. A beam search that validates worse than greedy is not used."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import torch
from torchmetrics.text import WordErrorRate

from tasks.common.atomic import save_atomic

LM_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0)


@dataclass(frozen=True)
class DecoderChoice:
    decoder: str  # "beam" or "greedy"
    lm_weight: float
    word_score: float
    val_wer_greedy: float
    val_wer_beam: float  # the best beam setting's
    clips: int

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        beam = f"beam {self.val_wer_beam:.2%} (lm_weight {self.lm_weight:g}, word_score {self.word_score:g})"
        return (f"decoder chosen on {self.clips} validation clips: greedy WER {self.val_wer_greedy:.2%}, best {beam} "
                f"-> {self.decoder}")


def candidates(has_lm: bool, current: tuple[float, float]) -> list[tuple[float, float]]:
    """(lm_weight, word_score) to try, the current setting first (it wins ties); without an LM its weight is moot."""
    grid = [(w, s) for w in (LM_WEIGHTS if has_lm else (current[0],)) for s in WORD_SCORES]
    return [current] + [setting for setting in grid if setting != current]


def word_error_rate(pairs: Iterable[tuple[list[str], list[str]]], device: torch.device) -> float:
    """WER over (hypotheses, references) batches, summed over every process (each holds its share of the clips):
    every process must call it, in the same order."""
    metric = WordErrorRate().to(device)
    for hypotheses, references in pairs:
        metric.update(hypotheses, references)
    return float(metric.compute())


@torch.no_grad()
def choose_decoder(model, loader, references_of) -> DecoderChoice:
    """model: a SpeechModel with its beam search files; loader: this process's share of the validation batches;
    references_of(batch) -> their transcripts. Decodes each setting of the grid and keeps the best."""
    was_training = model.training
    model.eval()
    emissions = []  # the network runs once; each decoder setting reads the same log-probabilities
    for batch in loader:
        log_probs, lengths = model.net(batch.features.to(model.device), batch.feature_lengths.to(model.device))
        emissions.append((log_probs.cpu(), lengths.cpu(), references_of(batch)))
    model.train(was_training)
    clips = int(model.trainer.strategy.reduce(torch.tensor(sum(len(r) for _, _, r in emissions), device=model.device),
                                              reduce_op="sum"))
    greedy = word_error_rate(((model.decode(lp, n, "greedy"), refs) for lp, n, refs in emissions), model.device)
    h = model.hparams
    scores = {}
    for lm_weight, word_score in candidates("lm" in model.beam_files, (h.lm_weight, h.word_score)):
        beam = model.configure_beam(lm_weight=lm_weight, word_score=word_score)
        scores[lm_weight, word_score] = word_error_rate(((beam(lp, n), refs) for lp, n, refs in emissions), model.device)
    (lm_weight, word_score), best = min(scores.items(), key=lambda item: item[1])  # the first of equals: current
    decoder = "beam" if best <= greedy else "greedy"
    return DecoderChoice(decoder, lm_weight, word_score, greedy, best, clips)


def record_decoder_choice(path: str, choice: DecoderChoice) -> None:
    """Write the choice into a checkpoint file, atomically: its hyperparameters (what loading it configures) and a
    `decoder_choice` entry with both validation WERs (plain values: it still loads with weights_only=True)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"].update(decoder=choice.decoder, lm_weight=choice.lm_weight,
                                          word_score=choice.word_score)
    checkpoint["decoder_choice"] = choice.as_dict()
    save_atomic(path, lambda file: torch.save(checkpoint, file))
