"""The offline default corpus: short MP4 clips of one shape in motion, in 10 classes that only motion tells apart.

Every clip shows one shape (bar, triangle, L, T, arrow, pac-man or ellipse: none looks the same after a
small turn, so rotation shows) in a random colour, size, position and angle, on a random background (a
two-colour gradient with a static texture), with fresh noise in every frame. The class is the motion, at
a random speed: moving in one of 8 directions (MoveLeft, MoveUpLeft, MoveUp, ...), Grow or Shrink by
default; RotateClockwise and RotateAnticlockwise on request.

Nothing else depends on the class: the first frame is drawn from the clip's seed alone, so it has the
same distribution in every class and a single frame cannot tell the class; motion has to. Positions live
on a torus (what leaves on the left comes back on the right), so where the shape is stays uniformly spread
in every later frame too, whichever way it moves.

Written as <folder>/<class>/<class>_NNNN.mp4 (H.264, or MPEG-4 part 2 when libx264 is missing) with
UCF101-style split files trainlist01.txt, testlist01.txt and classInd.txt, then read by the loader real
videos go through.
"""
from __future__ import annotations

import math
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from tasks.common.atomic import build_folder_atomic

# motion -> (x, y, turn, growth) direction; y grows downwards, and an angle growing in y-down image
# coordinates turns clockwise on screen
MOTIONS: dict[str, tuple[int, int, int, int]] = {
    "Grow": (0, 0, 0, 1),
    "MoveDown": (0, 1, 0, 0),
    "MoveDownLeft": (-1, 1, 0, 0),
    "MoveDownRight": (1, 1, 0, 0),
    "MoveLeft": (-1, 0, 0, 0),
    "MoveRight": (1, 0, 0, 0),
    "MoveUp": (0, -1, 0, 0),
    "MoveUpLeft": (-1, -1, 0, 0),
    "MoveUpRight": (1, -1, 0, 0),
    "RotateAnticlockwise": (0, 0, -1, 0),
    "RotateClockwise": (0, 0, 1, 0),
    "Shrink": (0, 0, 0, -1),
}
# The default classes, in the order the loader gives them (sorted folder names). The turning direction is
# left out: an LRCN trained from scratch on CPU did not learn it within the time budget (from one frame to
# the next it is a product of orientations, not a difference of positions); add the Rotate* motions to the
# corpus with --data.synth_classes for a harder task.
CLASSES = tuple(sorted(m for m in MOTIONS if not m.startswith("Rotate")))
TRAVEL = (0.3, 0.6)  # distance moved over the whole clip, in frame widths
TURN = (100.0, 220.0)  # degrees turned over the whole clip
GROWTH = (1.5, 2.0)  # size ratio between the first and the last frame
SIZE = (0.08, 0.18)  # half the shape's extent in the first frame, in frame widths (log-uniform in between)
TEXTURE = (3.0, 12.0)  # strength of the background's static texture, in 0..255 levels
NOISE = (2.0, 8.0)  # standard deviation of the per-frame pixel noise, in 0..255 levels
MIN_CONTRAST = 90.0  # least RGB distance between the shape's colour and either background colour
FPS = 12
STYLES = ("plain", "cluttered")
VERSION = 2  # bump when the clips change, so a corpus rendered before is not reused


def _bar(u, v):
    return (np.abs(u) <= 1) & (np.abs(v) <= 0.45)


def _triangle(u, v):  # isosceles, pointing along +u
    return (u >= -1) & (u <= 1) & (np.abs(v) <= 0.35 * (1 - u))


def _ell(u, v):
    return ((np.abs(u) <= 1) & (v >= 0.4) & (v <= 1)) | ((u >= -1) & (u <= -0.4) & (np.abs(v) <= 1))


def _tee(u, v):
    return ((np.abs(u) <= 1) & (v >= -1) & (v <= -0.5)) | ((np.abs(u) <= 0.25) & (v >= -1) & (v <= 1))


def _arrow(u, v):
    shaft = (u >= -1) & (u <= 0.2) & (np.abs(v) <= 0.2)
    head = (u >= 0.2) & (u <= 1) & (np.abs(v) <= 0.75 * (1 - u))
    return shaft | head


def _pacman(u, v):
    return (u * u + v * v <= 1) & ~((u > 0) & (np.abs(v) < 0.7 * u))


def _ellipse(u, v):
    return u * u + (v / 0.5) ** 2 <= 1


# canonical shapes: (u, v) in units of the half extent -> inside
SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "bar": _bar, "triangle": _triangle, "ell": _ell, "tee": _tee, "arrow": _arrow, "pacman": _pacman,
    "ellipse": _ellipse,
}


class Trajectory(NamedTuple):
    """Where the shape is in each of T frames, in pixels and radians."""

    x: np.ndarray  # (T,) centre, wrapped into [0, width)
    y: np.ndarray  # (T,)
    angle: np.ndarray  # (T,)
    size: np.ndarray  # (T,) half extent


def trajectory(motion: str, rng: np.random.Generator, frames: int, width: int) -> Trajectory:
    """The class's motion from a start state drawn without looking at the class.

    Every draw is made for every class in the same order, so the same generator state gives the same first
    frame whatever the motion; the class only chooses which of the drawn speeds applies, and its sign.
    """
    dx, dy, turn, grow = MOTIONS[motion]
    norm = math.hypot(dx, dy) or 1.0  # diagonals travel as far as the others
    x0, y0 = rng.uniform(0, width, 2)
    angle0 = rng.uniform(0, 2 * math.pi)
    size0 = math.exp(rng.uniform(math.log(SIZE[0] * width), math.log(SIZE[1] * width)))
    travel = rng.uniform(*TRAVEL) * width
    spin = math.radians(rng.uniform(*TURN))
    growth = math.log(rng.uniform(*GROWTH))
    t = np.arange(frames) / max(1, frames - 1)  # 0 .. 1 over the clip
    return Trajectory(x=(x0 + dx / norm * travel * t) % width, y=(y0 + dy / norm * travel * t) % width,
                      angle=angle0 + turn * spin * t,
                      size=size0 * np.exp(grow * growth * t))


def background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float: a gradient between two random colours in a random direction plus a static texture;
    and the two colours (2, 3)."""
    colours = rng.uniform(0, 255, (2, 3))
    direction = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    ramp = (xx - 0.5) * math.cos(direction) + (yy - 0.5) * math.sin(direction)
    ramp = (ramp - ramp.min()) / max(1e-6, np.ptp(ramp))  # (H, W) in 0..1
    coarse = rng.normal(0, 1, (5, 5))
    grid = np.linspace(0, 4, size)
    rows = np.array([np.interp(grid, np.arange(5), row) for row in coarse])  # (5, W): smooth along x
    texture = np.array([np.interp(grid, np.arange(5), col) for col in rows.T]).T  # (H, W): and along y
    texture *= rng.uniform(*TEXTURE)
    image = colours[0] + (colours[1] - colours[0]) * ramp[..., None] + texture[..., None]
    return image, colours


def shape_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """(3,) an RGB colour at least MIN_CONTRAST away from each colour in `avoid` (n, 3), when one is found."""
    best, best_distance = None, -1.0
    for _ in range(100):
        colour = rng.uniform(0, 255, 3)
        distance = float(np.min(np.linalg.norm(avoid - colour, axis=1)))
        if distance >= MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def render_clip(motion: str, seed, *, frames: int = 16, size: int = 64) -> np.ndarray:
    """One clip of `motion` -> (T, H, W, 3) uint8 RGB. `seed` (an int or a sequence of ints) decides
    everything else; the first frame depends on the seed alone, never on the motion."""
    if motion not in MOTIONS:
        raise ValueError(f"Unsupported motion {motion!r}: choose one of {', '.join(MOTIONS)}")
    rng = np.random.default_rng(seed)
    shape = SHAPES[list(SHAPES)[rng.integers(len(SHAPES))]]
    image, colours = background(rng, size)
    colour = shape_colour(rng, colours)
    noise = rng.uniform(*NOISE)
    path = trajectory(motion, rng, frames, size)
    # 2x2 samples per pixel, so edges are anti-aliased and sub-pixel motion shows
    sub = (np.arange(2 * size) + 0.5) / 2  # (2W,) sample positions in pixels
    x, y = sub[None, None, :], sub[None, :, None]  # broadcast to (T, 2H, 2W)
    cx, cy, angle, half = (a[:, None, None] for a in path)  # (T, 1, 1) each
    dx = (x - cx + size / 2) % size - size / 2  # the shortest way on the torus
    dy = (y - cy + size / 2) % size - size / 2
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / half, (-dx * sin + dy * cos) / half  # into the shape's own frame
    inside = shape(u, v).astype(np.float32)  # (T, 2H, 2W)
    alpha = inside.reshape(frames, size, 2, size, 2).mean(axis=(2, 4))[..., None]  # (T, H, W, 1)
    clip = image[None] * (1 - alpha) + colour * alpha + rng.normal(0, noise, (frames, size, size, 3))
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)


def video_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(frames: np.ndarray, path: str | Path, fps: int = FPS) -> None:
    """(T, H, W, 3) uint8 RGB -> an MP4 file (H and W even)."""
    import av

    codec = video_codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # the pool runs one process per core already
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 2_000_000
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder


class Job(NamedTuple):
    motion: str
    seed: tuple[int, ...]
    frames: int
    size: int
    out: str
    style: str = "plain"


def style_motions(style: str) -> Sequence[str]:
    """The motions a synthetic style can render: plain (this module) or cluttered (render_cluttered)."""
    from tasks.video.render_cluttered import CLUTTERED_MOTIONS

    if style not in STYLES:
        raise ValueError(f"Unsupported synthetic style {style!r}: choose one of {', '.join(STYLES)}")
    return tuple(MOTIONS) if style == "plain" else tuple(CLUTTERED_MOTIONS)


def _render(job: Job) -> None:
    from tasks.video.render_cluttered import render_cluttered_clip

    render = render_clip if job.style == "plain" else render_cluttered_clip
    write_video(render(job.motion, job.seed, frames=job.frames, size=job.size), job.out)


def render_corpus(folder: str | Path, *, classes: Sequence[str] = CLASSES, clips_per_class: int = 200, frames: int = 16,
                  size: int = 64, test_fraction: float = 0.2, seed: int = 0, workers: int = 0,
                  style: str = "plain") -> Path:
    """Render the corpus into `folder` unless it is already there -> the folder.

    Args:
        folder: written as <folder>/<class>/<class>_NNNN.mp4 plus trainlist01.txt, testlist01.txt and classInd.txt.
        classes: motions of the style, one class each.
        clips_per_class: clips of each class.
        frames: frames per clip.
        size: frame width and height in pixels (even, for H.264).
        test_fraction: share of each class in testlist01.txt; the rest is in trainlist01.txt.
        seed: draws every clip.
        workers: rendering processes; 0 = one per core, 1 = in this process.
        style: plain (one shape on a still background) or cluttered (render_cluttered: a panning camera,
            distractors, a small actor).
    """
    folder = Path(folder).expanduser()
    if (folder / "classInd.txt").exists():
        return folder
    if size % 2 or size < 16:
        raise ValueError(f"frame size {size}: must be even (H.264 needs it) and at least 16")
    classes = sorted(set(classes))
    motions = style_motions(style)
    unknown = [c for c in classes if c not in motions]
    if unknown or len(classes) < 2:
        raise ValueError(f"classes {unknown or classes}: need 2 or more of {', '.join(motions)}")
    if clips_per_class < 2 or frames < 2:
        raise ValueError(f"clips_per_class {clips_per_class} and frames {frames}: need at least 2 of each")

    def build(partial: Path) -> None:
        jobs, train, test = [], [], []
        n_test = max(1, round(test_fraction * clips_per_class)) if test_fraction > 0 else 0
        for label, motion in enumerate(classes):
            (partial / motion).mkdir(parents=True)
            for n in range(clips_per_class):
                name = f"{motion}/{motion}_{n:04d}.mp4"
                jobs.append(Job(motion, (seed, label, n), frames, size, str(partial / name), style))
                (test if n < n_test else train).append((name, label + 1))
        _run(jobs, workers)
        (partial / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
        (partial / "trainlist01.txt").write_text("".join(f"{name} {label}\n" for name, label in train))
        (partial / "testlist01.txt").write_text("".join(f"{name}\n" for name, _ in test))

    # rendered in a private folder, renamed when complete: never half a corpus, and never another writer's deleted
    return build_folder_atomic(folder, build)


def _run(jobs: list[Job], workers: int) -> None:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    desc = f"Rendering {len(jobs)} synthetic clips with {video_codec()} (once, then cached)"
    if workers <= 1:
        for job in tqdm(jobs, desc=desc, unit="clip"):
            _render(job)
        return
    with get_context("spawn").Pool(workers) as pool:  # spawn, like tasks.common.workers: no forked torch threads
        for _ in tqdm(pool.imap_unordered(_render, jobs, chunksize=8), total=len(jobs), desc=desc, unit="clip"):
            pass
