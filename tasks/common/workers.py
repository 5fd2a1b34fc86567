"""Run one function on many files in worker processes, with a progress bar; a file that fails is counted, not raised."""
from __future__ import annotations

import os
from multiprocessing import get_context
from typing import Callable, Iterable, TypeVar

from tqdm import tqdm

from tasks.common.errors import describe_error

T = TypeVar("T")


def _call(args):
    fn, path = args
    try:
        return path, fn(path), None
    except Exception as error:  # a corrupt file must not end the run: it is reported and skipped
        return path, None, describe_error(error)


def run_on_files(fn: Callable[[str], T], paths: Iterable[str], desc: str, workers: int = 0) -> tuple[dict[str, T], dict[str, str]]:
    """Run fn on every path -> ({path: result}, {path: reason it failed}). workers 0 = one per core."""
    paths = list(paths)
    workers = min(workers or os.cpu_count() or 1, max(1, len(paths)))
    jobs = [(fn, p) for p in paths]
    results, failures = {}, {}
    if workers == 1:
        outcomes = map(_call, jobs)
        pool = None
    else:
        pool = get_context("spawn").Pool(workers)
        outcomes = pool.imap(_call, jobs, chunksize=4)
    try:
        for path, result, error in tqdm(outcomes, total=len(jobs), desc=desc, unit="file"):
            if error is None:
                results[path] = result
            else:
                failures[path] = error
    finally:
        if pool is not None:
            pool.close()
    return results, failures


def describe_failures(failures: dict[str, str], total: int, what: str) -> str:
    first = next(iter(failures.items()))
    return f"skipped {len(failures)} of {total} {what} (first: {first[0]}: {first[1]})"
