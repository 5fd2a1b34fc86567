"""Subword tokenizer (BPE or unigram, Hugging Face `tokenizers`): fixed special ids and lossless decoding.

Metaspace marks word starts with "▁" instead of dropping spaces, so decode(encode(text)) gives back the
detokenized text sacreBLEU wants (after NFKC, and minus leading/trailing spaces).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from tasks.common.atomic import write_atomic
from tasks.common.errors import InputError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # trainers give special tokens the first ids, in this order
KINDS = ("bpe", "unigram")
MAX_ALPHABET = 1000  # BPE keeps the most frequent characters; rarer ones (stray symbols in web text) become <unk>


def _untrained(kind: str, vocab_size: int) -> tuple[Tokenizer, trainers.Trainer]:
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        alphabet = min(MAX_ALPHABET, vocab_size - len(SPECIAL_TOKENS))  # so the alphabet alone never exceeds vocab_size
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, limit_alphabet=alphabet,
                                      show_progress=False)
    elif kind == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>",
                                          show_progress=False)
    else:
        raise InputError(f"tokenizer {kind!r}: choose one of {', '.join(KINDS)}")
    tokenizer.normalizer = normalizers.NFKC()  # keeps case; folds look-alike code points (ﬁ -> fi)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return tokenizer, trainer


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8000) -> Tokenizer:
    """A tokenizer learned from `texts` with at most `vocab_size` tokens, PAD/BOS/EOS/UNK = 0/1/2/3.

    Small corpora give fewer tokens than asked for; never more.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"vocab_size {vocab_size} leaves no room for subwords after the {len(SPECIAL_TOKENS)} special tokens")
    tokenizer, trainer = _untrained(kind, vocab_size)
    too_small = f"vocab_size {vocab_size} is too small for the {kind} tokenizer to cover the characters of the training text"
    try:
        tokenizer.train_from_iterator(texts, trainer)
    except Exception as error:  # tokenizers raises a bare Exception when unigram cannot hold every character
        if "not large enough" in str(error):
            raise InputError(f"{too_small}; raise vocab_size or use bpe") from None
        raise
    if [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] != [PAD, BOS, EOS, UNK]:
        raise RuntimeError(f"special tokens got ids {[tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]}, expected 0..3")
    if tokenizer.get_vocab_size() > vocab_size:  # unigram keeps every character, even past vocab_size
        raise InputError(f"{too_small} ({tokenizer.get_vocab_size()} tokens needed); raise vocab_size or use bpe")
    return tokenizer


def tokenizer_to_json(tokenizer: Tokenizer) -> str:
    return tokenizer.to_str()


def tokenizer_from_json(text: str) -> Tokenizer:
    return Tokenizer.from_str(text)


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> Path:
    return write_atomic(path, tokenizer_to_json(tokenizer))  # never half a tokenizer, even with concurrent writers


def load_tokenizer(path_or_json: str | Path) -> Tokenizer:
    """From a file written by save_tokenizer, or from the JSON text itself (as stored in a checkpoint)."""
    if isinstance(path_or_json, str) and path_or_json.lstrip().startswith("{"):
        return tokenizer_from_json(path_or_json)
    return tokenizer_from_json(Path(path_or_json).read_text(encoding="utf-8"))


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Subword ids of `text`, without BOS/EOS."""
    return tokenizer.encode(text, add_special_tokens=False).ids


def encode_batch(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """encode() for many texts at once (in parallel, in Rust)."""
    return [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def decode(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Text of `ids` (a list or a 1-D tensor) up to the first EOS; PAD and BOS are skipped, UNK shows as <unk>."""
    kept = []
    for i in (int(i) for i in ids):
        if i == EOS:
            break
        if i not in (PAD, BOS):
            kept.append(i)
    return tokenizer.decode(kept, skip_special_tokens=False)
