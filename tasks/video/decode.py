"""Decoding is the cost: each clip is decoded once with PyAV into uint8 frames at the training size, kept on disk.

A clip's cache entry is <folder>/<key>.npy, (N, H, W, 3) uint8 RGB: up to `frames` frames evenly spaced over
the clip, or, with `fps`, consecutive frames at that rate from the clip's middle (so that motion is sampled
at the same rate in a 3-second and a 30-second clip), resized to H x W. The folder is named by the settings
(frames, fps, H, W) and the key by the file
(its path, size and modification time), so a changed file or setting is decoded anew and nothing stale is
read. A file that cannot be decoded gets <key>.bad holding the reason, so it is skipped, not retried, later
(a failing disk or file system is not the file's fault: it marks nothing).
This module imports no torch: the decoding processes start fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tasks.common.atomic import save_atomic, write_atomic
from tasks.common.caching import stamp_digest
from tasks.common.errors import describe_error

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def even_indices(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count), each at the centre of its share; all when count <= wanted."""
    if count <= wanted:
        return list(range(count))
    step = count / wanted
    return [int((k + 0.5) * step) for k in range(wanted)]


def chosen_frames(count: int, wanted: int, step: Optional[int] = None) -> list[int]:
    """Which of `count` frames to keep: `wanted` evenly spread over them (step None), or a run of `wanted` from
    every step-th frame, centred in the clip."""
    if step is None:
        return even_indices(count, wanted)
    every = list(range(0, count, step))
    start = max(0, (len(every) - wanted) // 2)
    return every[start : start + wanted]


def decode_clip(path: str | Path, *, frames: int, height: int, width: int, fps: Optional[float] = None) -> np.ndarray:
    """A video file -> (N, height, width, 3) uint8 RGB, N = min(frames, frames in the file): evenly spaced, or
    with fps, consecutive frames at (about) that rate from the middle of the clip.

    Raises ValueError on a file PyAV cannot open, one without a video stream, and one with no decodable frame;
    OSError (PyAV's own subclasses included) when the file system fails, which is no fault of the file.
    """
    import av

    step = None

    def decode(choose) -> tuple[list[np.ndarray], int, bool]:
        """choose(declared frame count) -> the frame indices to keep, or None for all."""
        nonlocal step
        kept, count = [], 0
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # parallelism comes from one process per core
            if fps:  # the file's own rate decides how many frames apart the kept ones are
                rate = float(stream.average_rate or stream.guessed_rate or fps)
                step = max(1, round(rate / fps))
            declared = stream.frames  # 0 when the container does not say
            pick = choose(declared)
            for frame in container.decode(stream):
                if pick is None or count in pick:  # resize only the frames kept
                    kept.append(frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA"))
                count += 1
        return kept, count, pick is not None and count != declared

    try:
        kept, count, misled = decode(lambda declared: set(chosen_frames(declared, frames, step)) if declared else None)
        if count == 0:
            raise ValueError("no decodable video frames")
        if misled:  # the header promised other frames than there were (a truncated file): choose again
            total = count
            kept, count, _ = decode(lambda _: set(chosen_frames(total, frames, step)))
    except av.error.FFmpegError as error:  # its message repeats the path
        if isinstance(error, (OSError, MemoryError)):  # the file system or memory failed, not the clip
            raise
        raise ValueError(error.strerror or str(error)) from None
    if len(kept) == count:  # every frame was kept (the header gave no count): choose among them now
        kept = [kept[i] for i in chosen_frames(len(kept), frames, step)]
    return np.stack(kept)


def cache_folder(cache_dir: str | Path, *, frames: int, height: int, width: int, fps: Optional[float] = None) -> Path:
    settings = [CACHE_VERSION, frames, height, width] + ([fps] if fps else [])  # (caches from before fps keep their name)
    rate = f"@{fps:g}fps" if fps else ""
    return Path(cache_dir).expanduser() / f"frames-{frames}{rate}x{height}x{width}-{stamp_digest(settings, 8)}"


def clip_key(path: str | Path) -> str:
    """Names a file's cache entry by its path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return stamp_digest([str(path), stat.st_size, stat.st_mtime_ns], 24)


def cached(folder: Path, path: str | Path) -> tuple[Path, Path]:
    """(frames .npy, failure .bad) of a clip's cache entry; at most one exists once it has been decoded."""
    key = clip_key(path)
    return folder / f"{key}.npy", folder / f"{key}.bad"


def cache_clip(path: str, *, folder: str, frames: int, height: int, width: int, fps: Optional[float] = None) -> int:
    """Decode one clip into its cache entry (for run_on_files) -> its frame count. Raises if it cannot.

    A clip that fails to decode gets its .bad entry, except on an OSError or MemoryError (a full disk, a network
    file system hiccup): that says nothing about the clip, so it is raised unrecorded and tried again next run.
    Entries are written atomically: processes caching the same clip at once never see half an entry.
    """
    out, bad = cached(Path(folder), path)
    try:
        clip = decode_clip(path, frames=frames, height=height, width=width, fps=fps)
    except (OSError, MemoryError):
        raise
    except Exception as error:
        write_atomic(bad, describe_error(error) + "\n")
        raise
    save_atomic(out, lambda file: np.save(file, clip))
    return len(clip)
