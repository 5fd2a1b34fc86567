"""Subword models (BPE or unigram, Hugging Face `tokenizers`) trained one way for every task.

Metaspace marks word starts with "▁" instead of dropping spaces, so decoding gives the text back with its spaces.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from tasks.common.errors import InputError

KINDS = ("bpe", "unigram")


def train_subword_model(texts: Iterable[str], kind: str, vocab_size: int, special_tokens: Sequence[str], *,
                        unk_token: Optional[str] = None, alphabet: Sequence[str] = (),
                        limit_alphabet: Optional[int] = None, nfkc: bool = False) -> Tokenizer:
    """A `kind` model of at most about vocab_size tokens learned from texts; special tokens get the first ids.

    unk_token: what unseen characters become (None: the alphabet must cover them). alphabet: characters that get a
    token whether seen or not. limit_alphabet: BPE keeps only that many characters. nfkc: fold look-alike code
    points (ﬁ -> fi) before anything else.
    """
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=unk_token))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                      initial_alphabet=list(alphabet), limit_alphabet=limit_alphabet, show_progress=False)
    elif kind == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens), unk_token=unk_token,
                                          initial_alphabet=list(alphabet), show_progress=False)
    else:
        raise InputError(f"subword model {kind!r}: choose one of {', '.join(KINDS)}")
    if nfkc:
        tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    try:
        tokenizer.train_from_iterator(texts, trainer)
    except Exception as error:  # tokenizers raises a bare Exception when unigram cannot hold every character
        if "not large enough" in str(error):
            raise InputError(f"vocab_size {vocab_size} is too small for the {kind} model to cover the characters of "
                             f"the training text; raise vocab_size or use bpe") from None
        raise
    for number, token in enumerate(special_tokens):
        if tokenizer.token_to_id(token) != number:
            raise RuntimeError(f"special token {token} got id {tokenizer.token_to_id(token)}, expected {number}")
    return tokenizer
