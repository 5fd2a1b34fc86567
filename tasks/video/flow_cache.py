"""Scene flow is the cost of a flow stream (0.4 s a 24-frame clip at 96 x 96 on one core, three colour channels: on the
fly, it would bound training to a fraction of the epochs), so it is computed once per clip, next to the frame cache.

A clip's entry is <frame cache>/flow-<digest>/<key>.npy, (N, H, W, 2) float16: motion.clip_flow of *all* the clip's
cached frames, whole, (dx, dy) pixels at frame n from frame n-1 (zero at n = 0), channels last like the frames, so
the dataset samples and crops both with the same indices. The folder is inside the frame cache's (flow depends on
the cached frames) and named by the flow method's version and constants; the key is the frame entry's, so a
re-decoded clip gets new flow. Flow is computed from the uint8 frames with the clip's own normalisation
(motion.clip_normalised), whatever the model's --model.normalize: it is what scene_flow's thresholds assume.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from tasks.common.atomic import save_atomic
from tasks.common.caching import stamp_digest
from tasks.common.errors import InputError
from tasks.video.motion import (CHANGE, CHANGE_REACH, CHANNEL_POWER, FARNEBACK, GREY_GAIN, LUMINANCE_FLOOR, NOISE_FLOOR,
                                OPPONENT, TILE, VOTE_TILES, clip_flow)

FLOW_VERSION = 5  # bump when scene_flow changes, so old flow is not reused


def flow_folder(frames_folder: str | Path) -> Path:
    settings = [FLOW_VERSION, CHANGE, CHANGE_REACH, FARNEBACK, GREY_GAIN, TILE, VOTE_TILES, OPPONENT, CHANNEL_POWER,
                LUMINANCE_FLOOR, NOISE_FLOOR]
    return Path(frames_folder) / f"flow-{stamp_digest(settings, 8)}"


def flow_file(folder: Path, frames_file: Path) -> Path:
    """The flow entry of a frame entry: the same name (the clip's key) in the flow folder."""
    return folder / Path(frames_file).name


def flow_of(clip: np.ndarray) -> np.ndarray:
    """A cached clip (N, H, W, 3) uint8 -> its flow (N, H, W, 2) float16, channels last like the clip."""
    with torch.no_grad():
        flow = clip_flow(torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)[None])[0]  # (N, 2, H, W)
    return flow.permute(0, 2, 3, 1).numpy().astype(np.float16)


def cache_flow(frames_file: str, *, folder: str) -> int:
    """Compute one clip's flow entry from its frame entry (for run_on_files) -> its frame count.

    One thread: parallelism comes from one process per core (and in the main process the setting is restored).
    Written atomically: a killed run leaves no half entry.
    """
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        flow = flow_of(np.load(frames_file))
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    save_atomic(flow_file(Path(folder), Path(frames_file)), lambda file: np.save(file, flow))
    return len(flow)


def fits(flow_path: Path, frames_shape: tuple[int, ...]) -> bool:
    """Whether flow_path holds a whole flow entry for frames of frames_shape (N, H, W, 3): its header only is read,
    memory-mapped, so checking every clip costs little; a truncated or foreign file does not fit."""
    try:
        flow = np.load(flow_path, mmap_mode="r")
    except (OSError, ValueError, EOFError):  # missing, or not a whole .npy
        return False
    return flow.dtype == np.float16 and flow.shape == (*frames_shape[:3], 2)


def frames_shape(frames_file: Path) -> tuple[int, ...]:
    return np.load(frames_file, mmap_mode="r").shape


def load_flow(flow_path: Path, frames_shape: tuple[int, ...]) -> np.ndarray:
    """A clip's flow entry (N, H, W, 2) float16, checked against its frames (N, H, W, 3): a missing, truncated or
    foreign file is a one-line error saying how to rebuild it, never a crash deep in a batch."""
    try:
        flow = np.load(flow_path)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"flow cache entry {flow_path} is unreadable ({type(error).__name__}: {error}): run again "
                         "(prepare_data rebuilds entries that do not fit)") from None
    if flow.dtype != np.float16 or flow.shape != (*frames_shape[:3], 2):
        raise InputError(f"flow cache entry {flow_path} holds {flow.dtype} {flow.shape}, not the flow of frames "
                         f"{tuple(frames_shape)}: run again (prepare_data rebuilds entries that do not fit)")
    return flow
