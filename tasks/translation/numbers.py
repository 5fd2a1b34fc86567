"""The offline default corpus: numbers written out in two languages by num2words, split by number."""
from __future__ import annotations

import random

from num2words import CONVERTER_CLASSES, num2words

from tasks.common.errors import InputError

Pairs = list[tuple[str, str]]
LARGEST = 999_999


def check_language(lang: str, what: str) -> None:
    if lang not in CONVERTER_CLASSES:
        choices = ", ".join(sorted(CONVERTER_CLASSES))
        raise InputError(f"{what} {lang!r}: num2words cannot write numbers in it; choose one of {choices}")
    try:
        num2words(LARGEST, lang=lang)
    except Exception as error:  # a few converters stop below a million; say so now, not after 50k numbers
        raise InputError(f"{what} {lang!r}: num2words fails on {LARGEST} in it ({type(error).__name__}: {error})") from None


def draw_numbers(count: int, rng: random.Random, largest: int = LARGEST) -> list[int]:
    """`count` distinct numbers in 0..largest, with as many short as long ones.

    Drawing the number of digits first (then the number) keeps "seven" and "seventy" in the corpus;
    uniform draws would be almost all six-digit numbers.
    """
    if count > largest + 1:
        raise InputError(f"asked for {count} distinct numbers but there are only {largest + 1} in 0..{largest}")
    most_digits = len(str(largest))
    seen: dict[int, None] = {}  # a dict keeps the draw order, so the result depends only on the seed
    while len(seen) < count:
        digits = rng.randint(1, most_digits)
        low = 0 if digits == 1 else 10 ** (digits - 1)
        seen[rng.randint(low, min(10**digits - 1, largest))] = None
    return list(seen)


def numbers_corpus(*, src_lang: str = "en", tgt_lang: str = "fr", train: int = 50_000, val: int = 1000, test: int = 1000,
                   seed: int = 0) -> dict[str, Pairs]:
    """{"train"|"val"|"test": [(source words, target words)]}, e.g. ("two hundred and forty-one", "deux cent quarante et un").

    Every number lands in exactly one split, so val and test measure translation of numbers never seen in training.
    """
    check_language(src_lang, "src_lang")
    check_language(tgt_lang, "tgt_lang")
    rng = random.Random(seed)
    numbers = draw_numbers(train + val + test, rng)
    rng.shuffle(numbers)  # small numbers saturate first in the draw; shuffling spreads them over the splits
    chosen = {"test": numbers[:test], "val": numbers[test : test + val], "train": numbers[test + val :]}
    return {split: [number_pair(n, src_lang, tgt_lang) for n in chosen[split]] for split in ("train", "val", "test")}


def number_pair(number: int, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """(241, "en", "fr") -> ("two hundred and forty-one", "deux cent quarante et un")."""
    return num2words(number, lang=src_lang), num2words(number, lang=tgt_lang)
