"""CTC beam search with torchaudio's flashlight decoder: lexicon-free, or words from a lexicon scored by a KenLM model.

Shapes: B utterances, T frames after subsampling, V labels (0 = blank).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from tasks.common.errors import InputError
from tasks.speech.vocab import CharVocab

BLANK_TOKEN, WORD_BOUNDARY = "-", "|"  # flashlight's names for the CTC blank and the space between words


@dataclass(frozen=True)
class BeamOptions:
    """How `lstm-suite transcribe` and the test split decode.

    Args:
        beam_size: hypotheses kept per frame.
        lexicon: a flashlight lexicon (`word w o r d |` per line): output only these words. None = lexicon-free.
        lm: a KenLM model (ARPA or binary) over the lexicon's words; None = no language model.
        lm_weight: how much the language model counts against the acoustic model.
        word_score: added per word (positive favours more, shorter words).
    """

    beam_size: int = 50
    lexicon: Optional[str] = None
    lm: Optional[str] = None
    lm_weight: float = 0.5
    word_score: float = 0.0


def beam_search_available() -> bool:
    try:
        from torchaudio.models.decoder import ctc_decoder  # noqa: F401  (needs flashlight-text)
    except ImportError:
        return False
    return True


@contextmanager
def native_output_silenced():
    """Send what C++ code writes to stdout and stderr to /dev/null (Python's own streams are flushed first)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def read_lexicon(path: str, tokens: list[str]) -> str:
    """A flashlight lexicon, `word w o r d |` per line, spelled only with the model's tokens -> its text, with the
    word boundary after every spelling (added where a line has none). Flashlight's own errors name neither the
    file nor the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"lexicon {path}: not UTF-8 text") from None
    known, entries = set(tokens), []
    for number, line in enumerate(lines, start=1):
        word, *spelling = line.split() or [""]
        if spelling[-1:] != [WORD_BOUNDARY]:
            spelling.append(WORD_BOUNDARY)
        if len(spelling) < 2:
            raise InputError(f"lexicon {path}: line {number}: expected a word and its spelling, like `two t w o |`, "
                             f"got {line!r}")
        unknown = sorted(set(spelling) - known)
        if unknown:
            raise InputError(f"lexicon {path}: line {number}: {word!r} is spelled with {', '.join(map(repr, unknown))}, "
                             f"not in the model's alphabet {''.join(tokens[1:])!r}")
        entries.append(f"{word} {' '.join(spelling)}\n")
    if not lines:
        raise InputError(f"lexicon {path}: empty")
    return "".join(entries)


def end_with_a_word_boundary(emissions: Tensor, lengths: Tensor, boundary: int) -> tuple[Tensor, Tensor]:
    """Emissions (B, T, V) and lengths with one more frame after each utterance's last, certain to be the word
    boundary.

    A lexicon spells every word with the boundary after it, so that words are told apart where the model says a
    space. Our model says a space only between words, never after the last one: without this frame the last word
    of a clip could complete only if the model emitted a space at its end, which costs more the more sharply
    trained the model is. A clip cut tightly after its word had no frame left for it at all, and the beam then
    dropped the word or chose another one that fits earlier (greedy "six" -> beam "", "three" -> "two").
    """
    B, T, V = emissions.shape
    extended = torch.full((B, T + 1, V), -1e4, dtype=emissions.dtype)
    extended[:, :T] = emissions
    extended[torch.arange(B), lengths.long()] = torch.full((V,), -1e4).index_fill_(0, torch.tensor(boundary), 0.0)
    return extended, lengths + 1


class BeamDecoder:
    """log-probabilities (B, T, V) and lengths (B,) -> transcripts, with torchaudio's `ctc_decoder`."""

    def __init__(self, vocab, options: BeamOptions):
        if not isinstance(vocab, CharVocab):
            raise InputError("beam search decodes character vocabularies (vocab: char); use greedy decoding for subwords")
        if BLANK_TOKEN in vocab.alphabet or WORD_BOUNDARY in vocab.alphabet:
            raise InputError(f"beam search: the alphabet may not hold {BLANK_TOKEN!r} or {WORD_BOUNDARY!r} "
                             "(the decoder's blank and word boundary)")
        if options.lm and not options.lexicon:
            raise InputError("beam search: a word language model needs a lexicon (--lexicon) to spell its words")
        for name in ("lexicon", "lm"):
            path = getattr(options, name)
            if path and not Path(path).is_file():
                raise InputError(f"{name} {path}: no such file")
        try:
            from torchaudio.models.decoder import ctc_decoder
        except ImportError:
            raise InputError("beam search needs flashlight-text: pip install flashlight-text "
                             "(or decode greedily with --decoder greedy)") from None
        tokens = [BLANK_TOKEN] + [WORD_BOUNDARY if c == " " else c for c in vocab.alphabet]
        if WORD_BOUNDARY not in tokens:
            raise InputError("beam search needs a space in the alphabet: it separates words")
        self.vocab, self.boundary = vocab, tokens.index(WORD_BOUNDARY)
        try:
            with tempfile.TemporaryDirectory() as folder, native_output_silenced():  # KenLM prints a progress bar
                lexicon = None
                if options.lexicon:  # flashlight reads a file, and keeps what it needs in memory
                    lexicon = Path(folder) / "lexicon.txt"
                    lexicon.write_text(read_lexicon(options.lexicon, tokens), encoding="utf-8")
                self.decoder = ctc_decoder(lexicon=lexicon and str(lexicon), tokens=tokens,
                                           lm=options.lm and str(options.lm), beam_size=options.beam_size,
                                           lm_weight=options.lm_weight, word_score=options.word_score,
                                           blank_token=BLANK_TOKEN, sil_token=WORD_BOUNDARY)
        except InputError:
            raise
        except (RuntimeError, ValueError) as error:  # the lexicon is checked above: what is left is the LM
            if not (options.lm or options.lexicon):
                raise
            reason = " ".join(str(error).split())  # KenLM's run over several lines, after its source position
            reason = re.sub(r"^.* threw \w+\. ", "", reason)[:200]
            if options.lm:
                raise InputError(f"lm {options.lm}: not a readable KenLM model, ARPA or binary ({reason})") from None
            raise InputError(f"lexicon {options.lexicon}: not a readable lexicon ({reason})") from None

    def __call__(self, log_probs: Tensor, lengths: Tensor) -> list[str]:
        emissions, lengths = log_probs.detach().float().cpu(), lengths.detach().cpu()  # the decoder reads CPU float32
        if self.decoder.word_dict is not None:
            emissions, lengths = end_with_a_word_boundary(emissions, lengths, self.boundary)
        results = self.decoder(emissions.contiguous(), lengths.to(torch.int32))
        texts = []
        for hypotheses in results:
            if not hypotheses:  # nothing survived the beam (e.g. no lexicon word fits): say nothing
                texts.append("")
            elif self.decoder.word_dict is not None:  # lexicon: the decoder spells out words
                texts.append(" ".join(hypotheses[0].words))
            else:  # lexicon-free: characters, with word boundaries as spaces
                texts.append(" ".join(self.vocab.decode(hypotheses[0].tokens.tolist()).split()))
        return texts
