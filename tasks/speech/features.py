"""The feature cache: log-mel frames of every utterance of a split, computed once into one float16 tensor.

One tensor rather than a file per utterance, so a big corpus loads memory-mapped. Its folder is named by the
manifests' paths, sizes and times, so an edited manifest gets new features rather than stale ones.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from tasks.common.caching import stamp_digest
from tasks.common.workers import run_on_files
from tasks.speech.audio import file_features
from tasks.speech.corpus import ManifestRow

CACHE_VERSION = 1  # bump when reading audio or features change, so old caches are not reused


def features_folder(cache_dir: str, n_mels: int, manifests: dict[str, Path]) -> Path:
    """Where the features of these (existing) manifests are cached, one <split>.pt each."""
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in manifests.values()]
    stamp = [CACHE_VERSION, n_mels, files]
    return Path(cache_dir).expanduser() / f"features-{stamp_digest(stamp)}"


def extract_features(rows: list[ManifestRow], n_mels: int, workers: int, what: str) -> dict:
    """Features of the rows with a transcript, in parallel -> the content of a split's cache file.

    One float16 tensor (frames of all utterances, M) with each utterance's start and length, so the file
    loads memory-mapped. Unreadable audio is recorded (path, reason) and left out.
    """
    spoken = [row for row in rows if row.text.strip()]
    paths = list(dict.fromkeys(row.audio for row in spoken))  # a file listed twice is read once
    results, failures = run_on_files(partial(file_features, n_mels=n_mels), paths, desc=f"Features of {what}",
                                    workers=workers)
    features = torch.empty(sum(len(f) for f, _ in results.values()), n_mels, dtype=torch.float16)
    place, start = {}, 0
    for path in paths:  # copied in and dropped one by one, so a big corpus is held in memory only once
        if path in results:
            frames, seconds = results.pop(path)
            features[start : start + len(frames)] = torch.from_numpy(frames)
            place[path] = (start, len(frames), seconds)
            start += len(frames)
    kept = [row for row in spoken if row.audio in place]
    return {
        "features": features,
        "starts": torch.tensor([place[row.audio][0] for row in kept], dtype=torch.long),
        "frames": torch.tensor([place[row.audio][1] for row in kept], dtype=torch.long),
        "seconds": torch.tensor([place[row.audio][2] for row in kept], dtype=torch.float64),
        "audio": [row.audio for row in kept],
        "text": [row.text for row in kept],
        "speaker": [row.speaker for row in kept],
        "total": len(rows),
        "empty": len(rows) - len(spoken),
        "unreadable": [[row.audio, failures[row.audio]] for row in spoken if row.audio in failures],
    }
