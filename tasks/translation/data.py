"""Translation data: sentence pairs as subword ids, in batches of similar length.

Shapes: B batch, S source length, T target length (both padded with PAD = 0).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, NamedTuple, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from tasks.common.atomic import builds_cache_once, write_atomic
from tasks.common.batching import bucketed_loader
from tasks.common.caching import stamp_digest
from tasks.common.errors import InputError
from tasks.common.splits import SplitDataModule
from tasks.translation.corpus import SPLITS, Pairs, drop_empty, read_disk, read_folder, read_hub
from tasks.translation.numbers import check_language, numbers_corpus
from tasks.translation.tokenizer import BOS, EOS, PAD, encode_batch, load_tokenizer, save_tokenizer, train_tokenizer

CACHE_VERSION = 1  # bump when reading or cleaning changes, so old caches are not reused


class Batch(NamedTuple):
    src: torch.Tensor  # (B, S) long: subwords + [EOS], padded with PAD
    src_lengths: torch.Tensor  # (B,) long: real tokens in src, EOS included
    tgt: torch.Tensor  # (B, T) long: [BOS] + subwords + [EOS], padded with PAD
    tgt_lengths: torch.Tensor  # (B,) long: real tokens in tgt, BOS and EOS included
    index: torch.Tensor  # (B,) long: position of each pair in data.pairs[split], for the reference text


class PairDataset(Dataset):
    """Encoded pairs; item i is (source ids + [EOS], [BOS] + target ids + [EOS], position in the split's pairs)."""

    def __init__(self, src_ids: list[list[int]], tgt_ids: list[list[int]], positions: list[int]):
        self.src_ids, self.tgt_ids, self.positions = src_ids, tgt_ids, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        src = torch.tensor(self.src_ids[i] + [EOS], dtype=torch.long)
        tgt = torch.tensor([BOS] + self.tgt_ids[i] + [EOS], dtype=torch.long)
        return src, tgt, self.positions[i]

    def lengths(self) -> list[tuple[int, int]]:
        """(source, target) length of every item, specials included."""
        return [(len(s) + 1, len(t) + 2) for s, t in zip(self.src_ids, self.tgt_ids)]


def collate_pairs(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    sources, targets, positions = zip(*items)
    return Batch(
        src=pad_sequence(sources, batch_first=True, padding_value=PAD),
        src_lengths=torch.tensor([len(s) for s in sources]),
        tgt=pad_sequence(targets, batch_first=True, padding_value=PAD),
        tgt_lengths=torch.tensor([len(t) for t in targets]),
        index=torch.tensor(positions),
    )


class TranslationDataModule(SplitDataModule):
    """Sentence pairs -> subword Batches: numbers in words offline by default, or a real parallel corpus.

    Args:
        corpus: "numbers" (generated, offline: numbers written out by num2words, split by number),
            "files" (a folder with train.<src_lang> + train.<tgt_lang>, or train.tsv, or train.jsonl with
            "src"/"tgt" fields; val/valid/dev likewise; test optional), "hf" (a Hugging Face dataset by
            name, downloaded in prepare_data) or "disk" (a DatasetDict saved with save_to_disk).
        path: the folder for corpus "files" or "disk".
        hf_name: the dataset for corpus "hf", e.g. "bentrevett/multi30k" or "wmt14".
        hf_config: its configuration, e.g. "de-en" for wmt14.
        src_lang: source language code: file suffix, dataset column, or num2words language.
        tgt_lang: target language code, likewise.
        numbers_train: training pairs of the numbers corpus.
        numbers_val: validation pairs of the numbers corpus (numbers never seen in training).
        numbers_test: test pairs of the numbers corpus (numbers never seen in training or validation).
        tokenizer: "bpe" or "unigram" subwords, learned jointly on both sides of the training split.
        vocab_size: the most subwords the tokenizer may have (specials included); the model's embedding size.
        max_len: training pairs with more subwords than this on either side are dropped (with a count);
            val and test pairs are always kept whole.
        batch_size: pairs per batch, unless batch_tokens is set.
        batch_tokens: if set, batches hold up to this many tokens (pairs x longest side) instead.
        num_workers: DataLoader worker processes.
        cache_dir: where the cleaned corpus and the tokenizer are kept, so they are built once per setting.
        seed: draws the numbers corpus and the batch order.
    """

    def __init__(
        self,
        *,
        corpus: Literal["numbers", "files", "hf", "disk"] = "numbers",
        path: Optional[str] = None,
        hf_name: Optional[str] = None,
        hf_config: Optional[str] = None,
        src_lang: str = "en",
        tgt_lang: str = "fr",
        numbers_train: int = 50_000,
        numbers_val: int = 1000,
        numbers_test: int = 1000,
        tokenizer: Literal["bpe", "unigram"] = "bpe",
        vocab_size: int = 1000,
        max_len: int = 100,
        batch_size: int = 64,
        batch_tokens: Optional[int] = None,
        num_workers: int = 0,
        cache_dir: str = "~/.cache/lstm-suite/translation",
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if corpus not in ("numbers", "files", "hf", "disk"):
            raise InputError(f"corpus {corpus!r}: choose numbers, files, hf or disk")
        if corpus in ("files", "disk") and not path:
            raise InputError(f"corpus {corpus!r} needs a path (the folder to read)")
        if corpus == "hf" and not hf_name:
            raise InputError("corpus 'hf' needs hf_name, e.g. bentrevett/multi30k")
        if corpus == "numbers":
            check_language(src_lang, "src_lang")
            check_language(tgt_lang, "tgt_lang")
        self.tokenizer = None  # a tokenizers.Tokenizer once setup() has run
        self.pairs: dict[str, Pairs] = {}  # raw text per split, the references for BLEU
        self.datasets: dict[str, PairDataset] = {}

    @property
    def has_test(self) -> bool:
        """Whether there is a test split to score after training (a corpus may bring only train and val)."""
        return bool(self.pairs.get("test"))

    @property
    def vocab_size(self) -> int:
        """The configured size, known before any data is read (LightningCLI links it to the model)."""
        return self.hparams.vocab_size

    def describe(self) -> str:
        h = self.hparams
        if h.corpus == "numbers":
            return f"numbers corpus {h.src_lang}->{h.tgt_lang}"
        return f"{h.path or h.hf_name}" + (f" ({h.hf_config})" if h.hf_config else "") + f" {h.src_lang}->{h.tgt_lang}"

    def _source_stamp(self) -> list:
        """What the cached corpus depends on: settings, and the size and date of every input file."""
        h = self.hparams
        stamp = [CACHE_VERSION, h.corpus, h.src_lang, h.tgt_lang]
        if h.corpus == "numbers":
            return stamp + [h.numbers_train, h.numbers_val, h.numbers_test, h.seed]
        if h.corpus == "hf":
            return stamp + [h.hf_name, h.hf_config]
        folder = Path(h.path).expanduser().resolve()
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return stamp + [str(folder)] + [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]

    def cache_folder(self) -> Path:
        return Path(self.hparams.cache_dir).expanduser() / f"{self.hparams.corpus}-{stamp_digest(self._source_stamp())}"

    def _tokenizer_file(self, folder: Path) -> Path:
        return folder / f"tokenizer-{self.hparams.tokenizer}-{self.hparams.vocab_size}.json"

    def _read_corpus(self) -> dict[str, Pairs]:
        h = self.hparams
        if h.corpus == "numbers":
            total = h.numbers_train + h.numbers_val + h.numbers_test
            rank_zero_info(f"writing out {total} numbers in {h.src_lang} and {h.tgt_lang} (once, then cached)")
            return numbers_corpus(src_lang=h.src_lang, tgt_lang=h.tgt_lang, train=h.numbers_train, val=h.numbers_val,
                                  test=h.numbers_test, seed=h.seed)
        if h.corpus == "files":
            return read_folder(h.path, h.src_lang, h.tgt_lang)
        if h.corpus == "disk":
            return read_disk(h.path, h.src_lang, h.tgt_lang)
        return read_hub(h.hf_name, h.hf_config, h.src_lang, h.tgt_lang)

    @builds_cache_once
    def prepare_data(self) -> None:
        folder = self.cache_folder()
        corpus_file, tokenizer_file = folder / "pairs.json", self._tokenizer_file(folder)
        if corpus_file.exists() and tokenizer_file.exists():
            return
        if corpus_file.exists():  # same corpus, another tokenizer setting
            pairs = json.loads(corpus_file.read_text(encoding="utf-8"))["pairs"]
        else:
            raw = self._read_corpus()
            cleaned = {split: drop_empty(raw[split]) for split in SPLITS}
            pairs = {split: kept for split, (kept, _) in cleaned.items()}
            for split in ("train", "val"):
                if not pairs[split]:
                    dropped = cleaned[split][1]
                    raise InputError(f"{self.describe()}: no {split} pairs left after dropping {dropped} with an empty side")
            skipped = {split: dropped for split, (_, dropped) in cleaned.items()}
            folder.mkdir(parents=True, exist_ok=True)
            content = {"source": self.describe(), "skipped": skipped, "pairs": pairs}
            write_atomic(corpus_file, json.dumps(content, ensure_ascii=False))
        train = pairs["train"]
        both_sides = [s for s, _ in train] + [t for _, t in train]  # one joint vocabulary: names and numbers are shared
        tokenizer = train_tokenizer(both_sides, self.hparams.tokenizer, self.hparams.vocab_size)
        save_tokenizer(tokenizer, tokenizer_file)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        folder = self.cache_folder()
        corpus_file, tokenizer_file = folder / "pairs.json", self._tokenizer_file(folder)
        if not (corpus_file.exists() and tokenizer_file.exists()):
            raise InputError(f"no prepared data in {folder}: call prepare_data() before setup()")
        cached = json.loads(corpus_file.read_text(encoding="utf-8"))
        self.tokenizer = load_tokenizer(tokenizer_file)
        self.pairs = {split: [(s, t) for s, t in cached["pairs"][split]] for split in SPLITS}
        skipped = {split: n for split, n in cached["skipped"].items() if n}
        if skipped:
            rank_zero_warn(f"{self.describe()}: skipped pairs with an empty side: "
                           + ", ".join(f"{n} in {split}" for split, n in skipped.items()))
        for split in SPLITS:
            self.datasets[split] = self._encode(split)
        counts = ", ".join(f"{split} {len(d)}" for split, d in self.datasets.items())
        rank_zero_info(f"{self.describe()}: {counts} pairs, {self.tokenizer.get_vocab_size()} subwords")

    def _encode(self, split: str) -> PairDataset:
        pairs = self.pairs[split]
        src_ids = encode_batch(self.tokenizer, [s for s, _ in pairs])
        tgt_ids = encode_batch(self.tokenizer, [t for _, t in pairs])
        positions = list(range(len(pairs)))
        if split == "train":  # only training drops long pairs: evaluation must score every sentence
            limit = self.hparams.max_len
            positions = [i for i in positions if len(src_ids[i]) <= limit and len(tgt_ids[i]) <= limit]
            if len(positions) < len(pairs):
                rank_zero_warn(f"dropped {len(pairs) - len(positions)} of {len(pairs)} training pairs longer than "
                               f"max_len={limit} subwords on a side")
            if not positions:
                raise InputError(f"{self.describe()}: no training pair has at most max_len={limit} subwords on each side")
        return PairDataset([src_ids[i] for i in positions], [tgt_ids[i] for i in positions], positions)

    def split_loader(self, split: str) -> DataLoader:
        if split == "test" and not self.pairs["test"]:
            raise InputError(f"{self.describe()} has no test split")
        h = self.hparams
        return bucketed_loader(self.datasets[split], collate_pairs, self.trainer, batch_size=h.batch_size,
                               batch_tokens=h.batch_tokens, shuffle=split == "train", seed=h.seed,
                               num_workers=h.num_workers)
