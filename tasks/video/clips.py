"""Which clips there are: the UCF101 / HMDB51 folder layout, their official split files, and a class index.

    root/<class name>/<clip>.{avi,mp4,mkv,webm}

Classes are the sub-folders of root, sorted by name; a clip's label is its folder's position in that list.
Split files, when given, are either UCF101's (trainlist01.txt with lines "Class/clip.avi 1", testlist01.txt
with lines "Class/clip.avi") or HMDB51's (<class>_test_split1.txt with lines "clip.avi 1", 1 = train,
2 = test, 0 = unused). Without them, each class is split by a stable hash of its clips' groups.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import NamedTuple, Optional

from tasks.common.errors import InputError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm")
SPLITS = ("train", "val", "test")
GROUP = re.compile(r"_g(\d+)_c\d+$")  # UCF101's v_<Class>_g08_c01: group 08 = one person and scene, filmed several times


class Clip(NamedTuple):
    path: Path  # absolute
    label: int  # index into the class names
    group: str  # clips of a group share actors and scene: they are never split between train and val


def class_names(root: str | Path) -> list[str]:
    """The sub-folders of root, sorted: the class index."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"video root {root}: no such folder (expected root/<class name>/<clip>.mp4)")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise InputError(f"video root {root}: found {len(names)} class folder(s), need at least 2 "
                         "(expected root/<class name>/<clip>.mp4)")
    return names


def videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def group_of(path: Path) -> str:
    match = GROUP.search(path.stem)
    return f"{path.parent.name}/g{match.group(1)}" if match else f"{path.parent.name}/{path.stem}"


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def carve(clips: list[Clip], fraction: float) -> tuple[list[Clip], list[Clip]]:
    """Split off about `fraction` of each class, whole groups at a time, chosen by a stable hash -> (rest, carved).

    Every class gives at least one group when fraction > 0 and it has two groups or more.
    """
    rest, carved = [], []
    by_class: dict[int, dict[str, list[Clip]]] = {}
    for clip in clips:
        by_class.setdefault(clip.label, {}).setdefault(clip.group, []).append(clip)
    for groups in by_class.values():
        total, taken = sum(len(g) for g in groups.values()), 0
        for n, name in enumerate(sorted(groups, key=_hash)):
            if fraction > 0 and taken < fraction * total and n < len(groups) - 1:
                carved += groups[name]
                taken += len(groups[name])
            else:
                rest += groups[name]
    return sorted(rest), sorted(carved)


def read_split_files(splits_dir: Path, split: int) -> tuple[list[str], list[str]]:
    """UCF101 or HMDB51 split files -> (train, test) paths relative to root, as the files spell them."""
    ucf = splits_dir / f"trainlist{split:02d}.txt", splits_dir / f"testlist{split:02d}.txt"
    hmdb = sorted(splits_dir.glob(f"*_test_split{split}.txt"))
    if ucf[0].is_file() and ucf[1].is_file():
        train, test = ([line.split()[0] for line in f.read_text().splitlines() if line.strip()] for f in ucf)
        return train, test
    if hmdb:
        train, test = [], []
        for listing in hmdb:
            name = listing.name[: -len(f"_test_split{split}.txt")]
            for number, line in enumerate(listing.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise InputError(f"{listing}, line {number}: expected '<clip> 0|1|2', got {line.strip()!r}")
                if parts[1] != "0":
                    (train if parts[1] == "1" else test).append(f"{name}/{parts[0]}")
        return train, test
    raise InputError(f"splits_dir {splits_dir}: no split {split} in it: expected trainlist{split:02d}.txt and "
                     f"testlist{split:02d}.txt (UCF101) or <class>_test_split{split}.txt (HMDB51)")


def list_clips(root: str | Path, *, splits_dir: Optional[str | Path] = None, split: int = 1, val_fraction: float = 0.1,
               test_fraction: float = 0.1) -> tuple[dict[str, list[Clip]], dict[str, list[str]]]:
    """-> ({"train"|"val"|"test": clips}, {split: clips its split file names that are not on disk}).

    Validation is carved out of the training clips (val_fraction of each class, by group); test comes
    from the split files, or is carved likewise (test_fraction) when there are none.
    """
    root = Path(root).expanduser().resolve()
    names = class_names(root)
    label = {name: i for i, name in enumerate(names)}
    on_disk = {p.relative_to(root).as_posix(): p for name in names for p in videos_in(root / name)}
    missing: dict[str, list[str]] = {"train": [], "test": []}
    if splits_dir is None:
        everything = [Clip(p, label[p.parent.name], group_of(p)) for p in on_disk.values()]
        train, test = carve(everything, test_fraction)
    else:
        folder = Path(splits_dir).expanduser()
        if not folder.is_dir():
            raise InputError(f"splits_dir {folder}: no such folder")
        folded = {rel.lower(): path for rel, path in on_disk.items()}  # UCF101's lists and folders disagree on case
        lists = dict(zip(("train", "test"), read_split_files(folder, split)))
        chosen: dict[str, list[Clip]] = {}
        for which, entries in lists.items():
            chosen[which] = []
            for entry in dict.fromkeys(entries):
                path = on_disk.get(entry) or folded.get(entry.lower())
                if path is None or path.parent.name not in label:
                    missing[which].append(entry)
                else:
                    chosen[which].append(Clip(path, label[path.parent.name], group_of(path)))
        train, test = sorted(chosen["train"]), sorted(chosen["test"])
    train, val = carve(train, val_fraction)
    return {"train": train, "val": val, "test": test}, missing
