"""Cache writes that are safe when several processes, or several machines sharing one home, build the same cache.

A reader must never see half a file or half a folder, and a writer must never destroy what another wrote: every
writer works under a private name of its own in the destination folder (same file system, so the final rename is
atomic, NFS included) and renames its finished result onto the final name. Two writers of one cache entry build the
same content, so whichever rename lands last (files) or first (folders) is as good as the other. A killed writer
leaves only its own hidden `.<name>.*` litter behind, never a truncated final file.

Private names are made with O_EXCL / mkdir rather than tempfile.mkstemp / mkdtemp: those create 0600 / 0700
entries, and a renamed cache would then lose the permissions (umask) every other cache file gets.
Atomic writes make two builders safe; `building_once` makes them cheap: the second waits for the first and
then finds the cache built. Imports nothing heavy: decoding worker processes use it.
"""
from __future__ import annotations

import fcntl
import functools
import os
import secrets
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


def _private_name(final: Path, kind: str) -> Path:
    """A hidden name next to `final` that no other writer (process or machine) will pick."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def save_atomic(path: str | Path, save: Callable[[BinaryIO], None], *, replace: bool = True) -> Path:
    """save(file) writes the content (np.save, torch.save, soundfile.write...) into a private temporary file, which
    then replaces `path` in one step: readers see the old file or the whole new one, and a failure leaves nothing.

    replace=False keeps a file another writer put at `path` first (ours is dropped): for a file whose modification
    time other caches are named by, which must not change once it exists.
    """
    path = Path(path)
    tmp = _private_name(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 less the umask, like open(..., "w")
    try:
        with os.fdopen(fd, "wb") as file:
            save(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        if replace:
            os.replace(tmp, path)
        else:
            _link_unless_there(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _link_unless_there(tmp: Path, path: Path) -> None:
    """Give `tmp` the name `path` unless `path` exists, in one step (a hard link, atomic on NFS too)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another writer's file is there: it stays
    except OSError:  # a file system without hard links: the next best is a check, then a rename
        if not path.exists():
            os.replace(tmp, path)
    tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, *, replace: bool = True) -> Path:
    """Text (UTF-8) or bytes into `path`, all or nothing (see save_atomic)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return save_atomic(path, lambda file: file.write(raw), replace=replace)


def build_folder_atomic(final: str | Path, build: Callable[[Path], None]) -> Path:
    """build(folder) fills a private folder next to `final`, which is then renamed onto `final` -> `final`.

    If `final` appeared meanwhile (another writer finished first), theirs is kept and only our own folder is
    deleted: a finished folder, which a reader may be using, is never replaced or removed. A build that raises
    deletes its own folder and leaves `final` as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    private = _private_name(final, "partial")
    private.mkdir()
    try:
        build(private)
        try:
            os.rename(private, final)  # atomic; fails if `final` is a folder with something in it
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(private)  # another writer's folder won: same content, and possibly in use
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    return final


@contextmanager
def building_once(cache_dir: str | Path) -> Iterator[Path]:
    """Hold the build lock of `cache_dir` (created if missing): one process at a time, on any machine sharing the
    folder, checks and builds the cache; the others wait here and then find it built, instead of building it too.

    A POSIX record lock (lockf), which NFS carries between machines and the kernel drops when its holder dies, so a
    killed builder never leaves the cache locked. Yields the expanded folder.
    """
    folder = Path(cache_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / ".build.lock"
    with open(lock_file, "a") as handle:  # lockf needs a file open for writing; "a" never truncates another's
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # busy: say why this run seems to hang, then wait for the lock
            print(f"waiting for another process that is building the cache in {folder} (lock: {lock_file.name})",
                  file=sys.stderr, flush=True)
            fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def builds_cache_once(prepare_data: Callable) -> Callable:
    """For a LightningDataModule.prepare_data that builds the cache in `self.hparams.cache_dir`: runs it under that
    folder's build lock, so two runs starting on a cold cache (or two nodes sharing a home) build it once."""
    @functools.wraps(prepare_data)
    def locked(self) -> None:
        with building_once(self.hparams.cache_dir):
            prepare_data(self)
    return locked
