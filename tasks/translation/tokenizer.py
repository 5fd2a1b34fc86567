"""Subword tokenizer (BPE or unigram, Hugging Face `tokenizers`): fixed special ids and lossless decoding.

Metaspace marks word starts with "▁" instead of dropping spaces, so decode(encode(text)) gives back the
detokenized text sacreBLEU wants (after NFKC, and minus leading/trailing spaces).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer

from tasks.common.atomic import write_atomic
from tasks.common.errors import InputError
from tasks.common.subwords import KINDS, train_subword_model

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]  # trainers give special tokens the first ids, in this order
MAX_ALPHABET = 1000  # BPE keeps the most frequent characters; rarer ones (stray symbols in web text) become <unk>


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8000) -> Tokenizer:
    """A tokenizer learned from `texts` with at most `vocab_size` tokens, PAD/BOS/EOS/UNK = 0/1/2/3, case kept.

    Small corpora give fewer tokens than asked for; never more.
    """
    if kind not in KINDS:
        raise InputError(f"tokenizer {kind!r}: choose one of {', '.join(KINDS)}")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"vocab_size {vocab_size} leaves no room for subwords after the {len(SPECIAL_TOKENS)} special tokens")
    alphabet = min(MAX_ALPHABET, vocab_size - len(SPECIAL_TOKENS))  # so the alphabet alone never exceeds vocab_size
    tokenizer = train_subword_model(texts, kind, vocab_size, SPECIAL_TOKENS, unk_token="<unk>",
                                    limit_alphabet=alphabet if kind == "bpe" else None, nfkc=True)
    if tokenizer.get_vocab_size() > vocab_size:  # unigram keeps every character, even past vocab_size
        raise InputError(f"vocab_size {vocab_size} is too small for the {kind} tokenizer to cover the characters of the "
                         f"training text ({tokenizer.get_vocab_size()} tokens needed); raise vocab_size or use bpe")
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
