"""Label vocabularies for CTC: id 0 is the blank, real labels start at 1.

Characters by default (blank, then the alphabet in its given order); subwords (BPE or unigram, Hugging Face
`tokenizers`) as an option. Both save to a JSON string, so a checkpoint can carry its vocabulary.
"""
from __future__ import annotations

import json
from typing import Iterable, Union

from tokenizers import Tokenizer

from tasks.common.errors import InputError
from tasks.common.subwords import KINDS as SUBWORD_KINDS
from tasks.common.subwords import train_subword_model

BLANK = 0
DEFAULT_ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
WORD_START = "▁"  # Metaspace writes spaces as this mark, so subwords decode back to the exact text


def check_alphabet(alphabet: str) -> str:
    if not alphabet:
        raise InputError(f"alphabet is empty: give the characters of the transcripts, e.g. {DEFAULT_ALPHABET!r}")
    repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
    if repeated:
        raise InputError(f"alphabet {alphabet!r} repeats {', '.join(map(repr, repeated))}: "
                         "each character must appear once")
    return alphabet


def unknown_characters(text: str, alphabet: str) -> set[str]:
    return set(text) - set(alphabet)


def label_ids(ids: Iterable[int]) -> list[int]:
    """ids as ints (a list or a 1-D tensor) without blanks."""
    return [i for i in (int(i) for i in ids) if i != BLANK]


class CharVocab:
    """Characters of `alphabet` -> ids 1..len(alphabet); 0 is the CTC blank."""

    kind = "char"

    def __init__(self, alphabet: str = DEFAULT_ALPHABET):
        self.alphabet = check_alphabet(alphabet)
        self._ids = {c: i for i, c in enumerate(alphabet, start=1)}

    @property
    def size(self) -> int:
        return 1 + len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        """Label ids of `text`; every character must be in the alphabet (check with unknown_characters first)."""
        try:
            return [self._ids[c] for c in text]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} is not in the alphabet {self.alphabet!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of label ids; blanks are skipped (collapsing CTC repeats is the decoder's job, not this one's)."""
        return "".join(self.alphabet[i - 1] for i in label_ids(ids))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "alphabet": self.alphabet}, ensure_ascii=False)


class SubwordVocab:
    """A trained `tokenizers` BPE or unigram model; id 0 is its "<blank>" special token."""

    def __init__(self, tokenizer: Tokenizer, kind: str):
        self.tokenizer, self.kind = tokenizer, kind

    @property
    def size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(label_ids(ids))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "tokenizer": self.tokenizer.to_str()}, ensure_ascii=False)


Vocab = Union[CharVocab, SubwordVocab]


def train_subwords(texts: Iterable[str], kind: str, vocab_size: int, alphabet: str = DEFAULT_ALPHABET) -> SubwordVocab:
    """Subwords learned from `texts` (all within `alphabet`), at most vocab_size of them, blank included.

    Every character of the alphabet gets a token, so any text within the alphabet can be encoded, seen or not.
    """
    alphabet = check_alphabet(alphabet)
    letters = [WORD_START if c == " " else c for c in alphabet]
    if vocab_size < 1 + len(letters):
        raise InputError(f"vocab_size {vocab_size} is too small for the {len(letters)} characters of the alphabet "
                         f"plus the blank: use at least {1 + len(letters)}")
    if kind not in SUBWORD_KINDS:
        raise InputError(f"vocab {kind!r}: choose char, {' or '.join(SUBWORD_KINDS)}")
    tokenizer = train_subword_model(texts, kind, vocab_size, ["<blank>"], alphabet=letters,
                                    limit_alphabet=len(letters) if kind == "bpe" else None)
    return SubwordVocab(tokenizer, kind)


def load_vocab(text: str) -> Vocab:
    """The vocabulary saved by to_json()."""
    saved = json.loads(text)
    if saved["kind"] == "char":
        return CharVocab(saved["alphabet"])
    return SubwordVocab(Tokenizer.from_str(saved["tokenizer"]), saved["kind"])
