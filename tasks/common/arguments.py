"""What every command's flags share: argparse types that check numbers and expand `~`, one-line errors, and
output paths checked before any work is done (so a typo in --out never throws away a finished run)."""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Callable

from tasks.common.errors import InputError


class CommandParser(argparse.ArgumentParser):
    """argparse for `lstm-suite COMMAND TASK`: defaults in --help, and a bad flag is a one-line InputError."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): must be", r"\1 must be", message)  # from the types below
        raise InputError(f"{message} (options: {self.prog} --help)")


def _number(kind: type, accept: Callable[[float], bool], bound: str) -> Callable[[str], float]:
    """An argparse type: `kind` (int or float) that `accept`s, else "must be {bound}"."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {'whole ' if kind is int else ''}number, got {text!r}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "at least 1")
non_negative_int = _number(int, lambda v: v >= 0, "at least 0")
positive_float = _number(float, lambda v: v > 0, "above 0")
probability = _number(float, lambda v: 0 < v <= 1, "above 0 and at most 1")


def user_path(text: str) -> Path:
    """A path as the user typed it, with ~ expanded (the shell leaves it alone in quotes and in --flag=~/x)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text).expanduser()


def _writable_place(path: Path, flag: str) -> None:
    """`path`, or else the nearest folder above it (the folders between are created), must be writable."""
    absolute = path.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if existing != absolute and not existing.is_dir():
        raise InputError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise InputError(f"{flag} {path}: no permission to write to {existing}")


def output_file(path: Path, flag: str) -> Path:
    """A file the command will write: checked now, before the work, not after it."""
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder; give a file name in it")
    _writable_place(path, flag)
    return path


def output_folder(path: Path, flag: str) -> Path:
    """A folder the command will write files into: checked now, created when the first file is written."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path}: is a file, not a folder")
    _writable_place(path, flag)
    return path
