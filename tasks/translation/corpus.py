"""Parallel corpora -> {"train"|"val"|"test": [(source, target), ...]}.

Three sources: a folder of text files (train.de + train.en, train.tsv or train.jsonl, and likewise for
val and test), a Hugging Face dataset by name, or a DatasetDict saved on disk. Every problem with the
input is an InputError naming the file (and line), raised before training starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tasks.common.errors import InputError

Pairs = list[tuple[str, str]]
SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "dev", "validation"), "test": ("test",)}


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, without line ends; a bad byte is reported with its line number."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is not part of the first sentence
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"{path} line {line}: not valid UTF-8 (byte {data[error.start]:#04x})") from None
    lines = text.split("\n")  # not splitlines(): it also splits at U+2028 and friends inside a sentence
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_parallel(src_path: Path, tgt_path: Path) -> Pairs:
    """Two files with one sentence per line, line i of one translating line i of the other."""
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(targets):
        raise InputError(f"{src_path} has {len(sources)} lines but {tgt_path} has {len(targets)}: "
                         "the two sides must align line by line")
    return list(zip(sources, targets))


def read_tsv(path: Path) -> Pairs:
    """source<TAB>target per line; further columns (e.g. Tatoeba's attribution) are ignored."""
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            pairs.append(("", ""))  # counted as an empty pair later, like a blank line in .de/.en files
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise InputError(f"{path} line {number}: no tab between source and target")
        pairs.append((fields[0], fields[1]))
    return pairs


def read_jsonl(path: Path) -> Pairs:
    """One JSON object per line with string fields "src" and "tgt"."""
    pairs = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            pairs.append(("", ""))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path} line {number}: expected an object with \"src\" and \"tgt\", got {type(row).__name__}")
        for field in ("src", "tgt"):
            if not isinstance(row.get(field), str):
                problem = "no" if row.get(field) is None else "a non-text"
                raise InputError(f"{path} line {number}: {problem} \"{field}\" field (expected {{\"src\": ..., \"tgt\": ...}})")
        pairs.append((row["src"], row["tgt"]))
    return pairs


def read_split(folder: Path, split: str, src_lang: str, tgt_lang: str) -> Optional[Pairs]:
    """The pairs of one split in any of the three layouts, or None when the folder has no file for it."""
    for name in SPLIT_NAMES[split]:
        src, tgt = folder / f"{name}.{src_lang}", folder / f"{name}.{tgt_lang}"
        if src.is_file() and tgt.is_file():
            return read_parallel(src, tgt)
        if src.is_file() or tgt.is_file():
            present, missing = (src, tgt) if src.is_file() else (tgt, src)
            raise InputError(f"{present} has no other side: {missing} is missing")
        if (folder / f"{name}.tsv").is_file():
            return read_tsv(folder / f"{name}.tsv")
        if (folder / f"{name}.jsonl").is_file():
            return read_jsonl(folder / f"{name}.jsonl")
    return None


def read_folder(folder: str | Path, src_lang: str, tgt_lang: str) -> dict[str, Pairs]:
    """train and val are required, test is optional (an empty list when absent)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (expected one holding train.{src_lang} + train.{tgt_lang}, "
                         "train.tsv or train.jsonl)")
    splits = {}
    for split in SPLITS:
        pairs = read_split(folder, split, src_lang, tgt_lang)
        if pairs is None and split != "test":
            looked_for = ", ".join(f"{n}.{src_lang} + {n}.{tgt_lang}, {n}.tsv, {n}.jsonl" for n in SPLIT_NAMES[split])
            raise InputError(f"{folder}: no {split} split; looked for {looked_for}")
        splits[split] = pairs or []
    return splits


def dataset_pairs(dataset, src_lang: str, tgt_lang: str, what: str) -> Pairs:
    """Pairs of a `datasets.Dataset` with rows {src_lang: ..., tgt_lang: ...} (multi30k) or
    {"translation": {src_lang: ..., tgt_lang: ...}} (wmt14)."""
    columns = dataset.column_names
    if "translation" in columns:
        rows = dataset["translation"]
        languages = sorted(rows[0]) if len(rows) else []
        if len(rows) and not (src_lang in rows[0] and tgt_lang in rows[0]):
            raise InputError(f"{what}: translations are in {', '.join(languages)}, not {src_lang} and {tgt_lang}")
        return [(row.get(src_lang) or "", row.get(tgt_lang) or "") for row in rows]  # None counts as an empty side
    if src_lang not in columns or tgt_lang not in columns:
        raise InputError(f"{what}: no columns {src_lang!r} and {tgt_lang!r} nor 'translation'; it has {', '.join(columns)}")
    return [(s or "", t or "") for s, t in zip(dataset[src_lang], dataset[tgt_lang])]


def dataset_dict_splits(datasets, src_lang: str, tgt_lang: str, what: str) -> dict[str, Pairs]:
    """Our three splits of a `datasets.DatasetDict` (its "validation" is our "val"); test is optional."""
    splits = {}
    for split in SPLITS:
        name = next((n for n in SPLIT_NAMES[split] if n in datasets), None)
        if name is None and split != "test":
            raise InputError(f"{what}: no {split} split (looked for {', '.join(SPLIT_NAMES[split])}; "
                             f"it has {', '.join(datasets)})")
        splits[split] = dataset_pairs(datasets[name], src_lang, tgt_lang, f"{what} [{name}]") if name else []
    return splits


def read_disk(path: str | Path, src_lang: str, tgt_lang: str) -> dict[str, Pairs]:
    """A DatasetDict written by `save_to_disk`."""
    import datasets

    folder = Path(path).expanduser()
    if not (folder / "dataset_dict.json").is_file():
        raise InputError(f"{folder}: not a saved DatasetDict (no dataset_dict.json; write one with DatasetDict.save_to_disk)")
    return dataset_dict_splits(datasets.load_from_disk(str(folder)), src_lang, tgt_lang, str(folder))


def read_hub(name: str, config: Optional[str], src_lang: str, tgt_lang: str) -> dict[str, Pairs]:
    """A dataset from the Hugging Face Hub, e.g. ("bentrevett/multi30k", None) or ("wmt14", "de-en"); HF caches the download."""
    import datasets

    what = name + (f" ({config})" if config else "")
    return dataset_dict_splits(datasets.load_dataset(name, config), src_lang, tgt_lang, what)


def drop_empty(pairs: Pairs) -> tuple[Pairs, int]:
    """Pairs with both sides non-blank, stripped of surrounding spaces -> (kept, number dropped)."""
    kept = [(s.strip(), t.strip()) for s, t in pairs if s.strip() and t.strip()]
    return kept, len(pairs) - len(kept)
