"""A word n-gram language model from the training transcripts, written as ARPA for KenLM (via flashlight-text).

KenLM queries ARPA files but its estimator (lmplz) is a separate C++ build; for a corpus of a few thousand
sentences this small estimator is enough: absolute discounting with back-off (Ney et al. 1994), in the
log10 ARPA format every ASR decoder reads. A bigger LM (e.g. LibriSpeech's 4-gram) can replace it at decode time.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from tasks.common.atomic import write_atomic

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
DISCOUNT = 0.5  # subtracted from every seen n-gram count; what it frees goes to the back-off
UNK_PROBABILITY = 1e-7  # words outside the lexicon are never output, so <unk> only needs to exist
END = "\\end\\"  # the last line of an ARPA file


def ngram_counts(sentences: Iterable[str], order: int) -> list[Counter]:
    """counts[n - 1][(w1, ..., wn)] for n = 1..order, sentences padded with <s> and </s>."""
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = [BOS, *sentence.split(), EOS]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                counts[n - 1][tuple(words[i : i + n])] += 1
    counts[0].pop((BOS,), None)  # <s> is a context, never predicted
    return counts


def estimate(sentences: list[str], order: int = 3) -> list[dict[tuple[str, ...], tuple[float, float]]]:
    """-> per order, {n-gram: (log10 probability, log10 back-off weight)}, the content of an ARPA file."""
    if order < 1:
        raise ValueError(f"LM order must be at least 1, got {order}")
    counts = ngram_counts(sentences, order)
    if not counts[0]:
        raise ValueError("no words to build a language model from")
    total = sum(counts[0].values())
    probs: list[dict[tuple[str, ...], float]] = [{}]
    # unigrams: maximum likelihood, scaled down to leave UNK_PROBABILITY for <unk>
    for gram, count in counts[0].items():
        probs[0][gram] = count / total * (1 - UNK_PROBABILITY)
    probs[0][(UNK,)] = UNK_PROBABILITY
    probs[0][(BOS,)] = 0.0
    for n in range(2, order + 1):
        context_total: Counter = Counter()
        for gram, count in counts[n - 1].items():
            context_total[gram[:-1]] += count
        probs.append({gram: (count - DISCOUNT) / context_total[gram[:-1]] for gram, count in counts[n - 1].items()})
    # back-off weights: the mass the discount freed, spread over what the shorter context predicts
    followers: list[dict] = [defaultdict(list) for _ in range(order)]
    for n in range(2, order + 1):
        for gram in probs[n - 1]:
            followers[n - 2][gram[:-1]].append(gram[-1])
    table = []
    for n in range(1, order + 1):
        level = {}
        for gram, p in probs[n - 1].items():
            backoff = 0.0
            if n < order and gram in followers[n - 1]:
                seen = followers[n - 1][gram]
                freed = 1 - sum(probs[n][gram + (w,)] for w in seen)
                # every (context, w) seen also has its shorter (context[1:], w) seen: no nested back-off here
                lower = 1 - sum(probs[n - 1][gram[1:] + (w,)] for w in seen)
                backoff = math.log10(max(freed, 1e-12) / max(lower, 1e-12))
            level[gram] = (math.log10(p) if p > 0 else -99.0, backoff)
        table.append(level)
    return table


def write_arpa(sentences: list[str], path: str | Path, order: int = 3) -> Path:
    """Estimate an `order`-gram model from `sentences` (space-separated words) and write it as ARPA."""
    table = estimate(sentences, order)
    lines = ["", "\\data\\"] + [f"ngram {n}={len(level)}" for n, level in enumerate(table, 1)]
    for n, level in enumerate(table, 1):
        lines += ["", f"\\{n}-grams:"]
        for gram, (logp, backoff) in sorted(level.items()):
            lines.append(f"{logp:.6f}\t{' '.join(gram)}" + (f"\t{backoff:.6f}" if n < len(table) else ""))
    lines += ["", END, ""]
    return write_atomic(path, "\n".join(lines))  # all or nothing: a decoder never reads a truncated LM


def write_lexicon(words: Iterable[str], path: str | Path) -> Path:
    """The flashlight lexicon: each word followed by its spelling and the word boundary, `two t w o |`."""
    return write_atomic(path, "".join(f"{w} {' '.join(w)} |\n" for w in sorted(set(words))))


def written_whole(path: Path) -> bool:
    """Whether a lexicon or ARPA file exists and ends as a complete one does (an ARPA file with its \\end\\ line).

    They are written atomically now, but older versions wrote them in place: a run killed mid-write left a
    truncated file, which must be rebuilt rather than reused.
    """
    if not path.is_file():
        return False
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - len(END) - 1))
        tail = file.read()
    return tail.endswith(f"{END}\n".encode() if path.suffix == ".arpa" else b"\n")


def write_beam_files(sentences: list[str], files: dict[str, Path], order: int) -> None:
    """What beam search needs from the training transcripts: the lexicon of their words -> files["lexicon"]
    and, if files has "lm", their `order`-gram LM -> files["lm"]."""
    write_lexicon((word for sentence in sentences for word in sentence.split()), files["lexicon"])
    if "lm" in files:
        write_arpa(sentences, files["lm"], order)
