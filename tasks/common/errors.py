"""Bad input, and the one-line messages that report it and other failures."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user (a file, a flag, a config value): reported in one line, no traceback."""


def describe_error(error: BaseException) -> str:
    """One short line: the exception's type and the first line of its message."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:200]


def plural(count: int, noun: str) -> str:
    """'1 file', '3 files'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
