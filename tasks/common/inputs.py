"""The files a command was given: files as they are, folders searched for the suffixes it reads."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tasks.common.errors import InputError


def expand_inputs(inputs: Iterable[str], suffixes: Iterable[str], what: str) -> list[Path]:
    """Files and folders -> files; a folder holding none of `suffixes` (or a missing path) is a one-line error.

    what: the kind of file, for the error ("audio", "video").
    """
    suffixes = tuple(suffixes)
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"{item}: no {what} files ({', '.join(suffixes)}) in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    return files
