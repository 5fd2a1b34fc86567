"""The harder synthetic style (`--data.synth_style=cluttered`): a small actor whose *way of moving* is the class,
in a scene that moves too.

Each clip shows a textured world (smooth colour fields and random blobs) seen through a camera that pans at a
random speed, a small actor and two larger distractor shapes that drift in straight lines. The six classes
differ only in how the actor moves relative to the world: circling clockwise or anticlockwise, swinging
sideways or up and down, hopping, or staying still (carried across the frame by the pan alone). Straight
drift is what the distractors do, so no class is a straight line.

As in the plain style, every random draw is made in the same order for every class and every motion starts
from the actor's first position, so the first frame depends on the clip's seed alone: one frame cannot tell
the class. The world wraps around (a torus twice the frame's size), so nothing ever leaves the scene.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from tasks.video.render import NOISE, SHAPES, shape_colour

# class -> the actor's offset from its first position at time t in 0..1, given (radius, cycles, phase) draws
CLUTTERED_MOTIONS: dict[str, Callable[[np.ndarray, float, float, float], tuple[np.ndarray, np.ndarray]]] = {
    "CircleClockwise": lambda t, r, n, p: (r * (np.cos(p + 2 * np.pi * n * t) - np.cos(p)),
                                           r * (np.sin(p + 2 * np.pi * n * t) - np.sin(p))),
    "CircleAnticlockwise": lambda t, r, n, p: (r * (np.cos(p - 2 * np.pi * n * t) - np.cos(p)),
                                               r * (np.sin(p - 2 * np.pi * n * t) - np.sin(p))),
    "Hop": lambda t, r, n, p: (0.5 * r * math.copysign(1, math.cos(p)) * t, -1.2 * r * np.abs(np.sin(np.pi * 2 * n * t))),
    "Still": lambda t, r, n, p: (0 * t, 0 * t),
    "SwingSideways": lambda t, r, n, p: (r * np.sin(2 * np.pi * 2 * n * t), 0 * t),
    "SwingUpDown": lambda t, r, n, p: (0 * t, r * np.sin(2 * np.pi * 2 * n * t)),
}
CLUTTERED_CLASSES = tuple(sorted(CLUTTERED_MOTIONS))
ACTOR_SIZE = (0.035, 0.06)  # half the actor's extent, in frame widths
DISTRACTOR_SIZE = (0.06, 0.12)
RADIUS = (0.1, 0.16)  # of the actor's motion, in frame widths
CYCLES = (0.8, 1.2)  # turns of a circle; swings and hops make twice as many
PAN = (0.1, 0.4)  # the camera's travel over the clip, in frame widths
DRIFT = (0.2, 0.6)  # each distractor's travel over the clip


def world_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(S, S, 3) float, S = 2 * size: smooth colour fields plus 40 random blobs; tiles seamlessly."""
    S = 2 * size
    yy, xx = np.mgrid[0:S, 0:S] * (2 * math.pi / S)
    image = np.zeros((S, S, 3))
    for _ in range(3):  # periodic colour waves: low frequencies only, so the texture wraps without a seam
        kx, ky = rng.integers(1, 4, 2)
        image += rng.uniform(20, 50, 3) * np.sin(kx * xx + ky * yy + rng.uniform(0, 2 * math.pi))[..., None]
    image += rng.uniform(60, 190, 3)
    for _ in range(40):
        cx, cy, radius = rng.uniform(0, S), rng.uniform(0, S), rng.uniform(0.02, 0.07) * S
        dx = (np.arange(S) - cx + S / 2) % S - S / 2
        dy = (np.arange(S) - cy + S / 2) % S - S / 2
        blob = (dx[None] ** 2 + dy[:, None] ** 2) <= radius**2
        image[blob] = 0.5 * image[blob] + 0.5 * rng.uniform(0, 255, 3)
    return image


def _draw(clip: np.ndarray, rng: np.random.Generator, view: tuple[np.ndarray, np.ndarray], path: tuple[np.ndarray, ...],
          colour: np.ndarray, S: int) -> None:
    """Paint one shape (drawn from rng) along path (x, y, angle, half) in world pixels into clip (T, H, W, 3)."""
    shape = SHAPES[list(SHAPES)[rng.integers(len(SHAPES))]]
    T, H, W = clip.shape[:3]
    sub = (np.arange(2 * W) + 0.5) / 2  # 2x2 samples per pixel
    vx, vy = (v[:, None, None] for v in view)  # (T, 1, 1): the world position of the frame's corner
    cx, cy, angle, half = (a[:, None, None] for a in path)
    dx = (vx + sub[None, None, :] - cx + S / 2) % S - S / 2
    dy = (vy + sub[None, :, None] - cy + S / 2) % S - S / 2
    cos, sin = np.cos(angle), np.sin(angle)
    inside = shape((dx * cos + dy * sin) / half, (-dx * sin + dy * cos) / half).astype(np.float32)
    alpha = inside.reshape(T, H, 2, W, 2).mean(axis=(2, 4))[..., None]
    clip *= 1 - alpha
    clip += colour * alpha


def render_cluttered_clip(motion: str, seed, *, frames: int = 24, size: int = 96) -> np.ndarray:
    """One cluttered clip of `motion` -> (T, H, W, 3) uint8 RGB; the first frame depends on `seed` alone."""
    if motion not in CLUTTERED_MOTIONS:
        raise ValueError(f"Unsupported motion {motion!r}: choose one of {', '.join(CLUTTERED_MOTIONS)}")
    rng = np.random.default_rng(seed)
    S = 2 * size
    world = world_texture(rng, size)
    t = np.arange(frames) / max(1, frames - 1)
    pan_angle, pan = rng.uniform(0, 2 * math.pi), rng.uniform(*PAN) * size
    view = (rng.uniform(0, S) + pan * math.cos(pan_angle) * t, rng.uniform(0, S) + pan * math.sin(pan_angle) * t)
    rows = (np.rint(view[1])[:, None] + np.arange(size)[None]).astype(int) % S  # (T, H)
    cols = (np.rint(view[0])[:, None] + np.arange(size)[None]).astype(int) % S  # (T, W)
    clip = world[rows[:, :, None], cols[:, None, :]]  # (T, H, W, 3)
    view = (np.rint(view[0]), np.rint(view[1]))  # shapes move with the background's whole-pixel view
    palette = np.array([world.reshape(-1, 3).mean(0), world.reshape(-1, 3).min(0), world.reshape(-1, 3).max(0)])
    for _ in range(2):  # distractors, drawn first: the actor passes in front of them
        x0, y0 = view[0][0] + rng.uniform(0.1, 0.9) * size, view[1][0] + rng.uniform(0.1, 0.9) * size  # in sight
        heading = rng.uniform(0, 2 * math.pi)
        drift, half = rng.uniform(*DRIFT) * size, rng.uniform(*DISTRACTOR_SIZE) * size
        spin = rng.uniform(-1, 1) * t
        path = (x0 + drift * math.cos(heading) * t, y0 + drift * math.sin(heading) * t, rng.uniform(0, 7) + spin,
                np.full(frames, half))
        _draw(clip, rng, view, path, shape_colour(rng, palette), S)
    # the actor starts inside the first frame, somewhere away from its edges
    x0 = view[0][0] + rng.uniform(0.3, 0.7) * size
    y0 = view[1][0] + rng.uniform(0.3, 0.7) * size
    radius, cycles, phase = rng.uniform(*RADIUS) * size, rng.uniform(*CYCLES), rng.uniform(0, 2 * math.pi)
    half, angle = rng.uniform(*ACTOR_SIZE) * size, rng.uniform(0, 2 * math.pi)
    colour = shape_colour(rng, palette)
    noise = rng.uniform(*NOISE)
    ox, oy = CLUTTERED_MOTIONS[motion](t, radius, cycles, phase)
    _draw(clip, rng, view, (x0 + ox, y0 + oy, np.full(frames, angle), np.full(frames, half)), colour, S)
    clip += rng.normal(0, noise, clip.shape)
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)
