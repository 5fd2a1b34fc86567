"""Motion streams computed from the frames themselves: differences on the fly (cheap at cached sizes); scene flow
(OpenCV's Farnebäck, about 7 ms a frame pair at 96 x 96 on one core, which would bound training) once per clip into
the flow cache (tasks/video/flow_cache.py), or on the fly when a raw video is classified.

Shapes: B clips, T frames, C channels, H x W frame size.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F


def frame_differences(frames: Tensor) -> Tensor:
    """(B, T, C, H, W) -> (B, T, C, H, W): frame t minus frame t-1, zero for the first frame: where things
    moved, a cheap motion stream (the RGB difference of Wang et al. 2016's temporal segment networks)."""
    return torch.cat([torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]], dim=1)


TILE = 28  # pixels: tiles big enough for a few pixels of pan, small enough that most show only background


def camera_shifts(frames: Tensor) -> Tensor:
    """(B, T, C, H, W) -> (B, T-1, 2): how far the whole picture moved from frame t-1 to frame t, (dy, dx) in
    pixels, sub-pixel.

    Phase correlation (Kuglin & Hines 1975): the whitened cross-power spectrum of two translated images is a
    pure phase ramp whose inverse FFT peaks at the translation. Done on one image, a large moving object can
    outvote the background; so it is done per tile (a grid of about TILE-pixel tiles) and the tiles' correlation
    surfaces are summed: each tile votes for its own shift, and the background, in most tiles, wins. Measured on
    30 cluttered clips at 64 px (330 frame pairs, pan and two drifting distractors): whole-frame 40 pairs wrong
    by a pixel or more, tiles none.

    A still camera over a smooth background (a wall, the sky, the default corpus's gradients) gives the
    background tiles almost nothing to vote with, and a sharp moving shape wins: the shape's motion would be taken
    for the camera's (measured on 40 default-corpus clips: 539 of 920 frame pairs). So the camera stays still
    unless most regions of the frame agree it moved (_camera_moved).
    """
    B, T, C, H, W = frames.shape
    grid = max(1, round(min(H, W) / TILE))
    th, tw = H // grid, W // grid
    gray = frames.float().mean(dim=2)[..., :th * grid, :tw * grid]  # (B, T, H', W')
    tiles = gray.unflatten(-2, (grid, th)).unflatten(-1, (grid, tw)).transpose(3, 4)  # (B, T, grid, grid, th, tw)
    window = torch.outer(torch.hann_window(th, periodic=False, device=frames.device),
                         torch.hann_window(tw, periodic=False, device=frames.device))  # no false peak from the edges
    spectra = torch.fft.rfft2((tiles - tiles.mean(dim=(-2, -1), keepdim=True)) * window)
    cross = spectra[:, 1:] * spectra[:, :-1].conj()
    votes = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-8), s=(th, tw)).sum(dim=(2, 3))  # (B, T-1, th, tw)
    flat = votes.flatten(-2)
    peak = flat.argmax(dim=-1)
    rows, cols = peak // tw, peak % tw

    def refined(index: Tensor, size: int, at) -> Tensor:
        """Signed shift, with a parabola through the peak and its two neighbours (wrapping) for the fraction."""
        left, centre, right = at((index - 1) % size), at(index), at((index + 1) % size)
        curvature = left - 2 * centre + right
        offset = torch.where(curvature.abs() > 1e-8, 0.5 * (left - right) / curvature, torch.zeros_like(curvature))
        return (index + offset.clamp(-0.5, 0.5) + size / 2) % size - size / 2

    def value(r: Tensor, c: Tensor) -> Tensor:
        return flat.gather(-1, (r * tw + c)[..., None])[..., 0]

    shifts = torch.stack([refined(rows, th, lambda r: value(r, cols)), refined(cols, tw, lambda c: value(rows, c))],
                         dim=-1)
    return shifts.masked_fill(~_camera_moved(frames, shifts.round())[..., None], 0.0)


VOTE_TILES = 4  # a VOTE_TILES x VOTE_TILES grid of regions, each saying whether the shift explains it better


def _camera_moved(frames: Tensor, shifts: Tensor) -> Tensor:
    """(B, T, C, H, W), whole-pixel shifts (B, T-1, 2) -> (B, T-1) bool: whether most regions of frame t match frame
    t-1 moved by the shift better than frame t-1 unmoved (a region the move uncovers has no say). A still camera
    over a smooth background, with a sharp shape moving across it, is the case this settles: phase correlation
    follows the shape (nothing else votes), but every region the shape is not in matches best unmoved."""
    inside = _covered(shifts, *frames.shape[-2:]).float()  # (B, T-1, H, W)
    share = F.adaptive_avg_pool2d(inside.flatten(0, 1)[:, None], VOTE_TILES).view(*shifts.shape[:2], -1)
    following = frames[:, 1:].float()

    def regional(difference: Tensor) -> Tensor:  # (B, T-1, H, W) -> mean over each region's covered pixels
        total = F.adaptive_avg_pool2d((difference * inside).flatten(0, 1)[:, None], VOTE_TILES)
        return total.view(*shifts.shape[:2], -1) / share.clamp_min(1e-6)

    unmoved = regional((following - frames[:, :-1].float()).abs().sum(dim=2))
    moved = regional((following - shifted(frames[:, :-1].float(), shifts[:, :, None])).abs().sum(dim=2))
    covered = share > 0.5
    votes = ((moved < unmoved) & covered).sum(dim=-1)
    return (shifts.abs().sum(dim=-1) > 0) & (2 * votes > covered.sum(dim=-1))


def _covered(shifts: Tensor, H: int, W: int) -> Tensor:
    """shifts (..., 2) = (dy, dx) -> (..., H, W) bool: the pixels a frame moved by the shift still has picture for
    (the rest is the strip the move brought in)."""
    y = torch.arange(H, device=shifts.device)[:, None]
    x = torch.arange(W, device=shifts.device)[None, :]
    dy, dx = shifts[..., 0, None, None], shifts[..., 1, None, None]
    return (y - dy >= 0) & (y - dy <= H - 1) & (x - dx >= 0) & (x - dx <= W - 1)


def shifted(images: Tensor, shifts: Tensor) -> Tensor:
    """images (..., H, W) moved by shifts (..., 2) = (dy, dx) pixels (sub-pixel, by the Fourier shift theorem):
    out[y, x] = images[y - dy, x - dx]. What enters from outside the frame wraps around; callers mask it."""
    H, W = images.shape[-2:]
    ky = torch.fft.fftfreq(H, device=images.device)[:, None]  # cycles per pixel
    kx = torch.fft.rfftfreq(W, device=images.device)[None, :]
    dy, dx = shifts[..., 0, None, None], shifts[..., 1, None, None]
    ramp = torch.exp(-2j * math.pi * (ky * dy + kx * dx))
    return torch.fft.irfft2(torch.fft.rfft2(images.float()) * ramp, s=(H, W))


def stabilised_differences(frames: Tensor, shifts: Optional[Tensor] = None) -> Tensor:
    """(B, T, C, H, W) -> (B, T, C, H, W): frame t minus frame t-1 moved by the camera's shift between them, so
    a panning camera's background cancels and what moves *in the scene* remains; zero for the first frame and
    where frame t-1 had no picture (the strip the pan brought in). shifts: camera_shifts(frames), if known."""
    B, T, C, H, W = frames.shape
    if T < 2:
        return torch.zeros_like(frames)
    shifts = camera_shifts(frames) if shifts is None else shifts  # (B, T-1, 2)
    previous = shifted(frames[:, :-1], shifts[:, :, None])  # (B, T-1, C, H, W), aligned to frame t
    inside = _covered(shifts, H, W)  # (B, T-1, H, W)
    moved = (frames[:, 1:].float() - previous) * inside[:, :, None]
    return torch.cat([torch.zeros_like(frames[:, :1]), moved.to(frames.dtype)], dim=1)


def _blurred(images: Tensor, sigma: float) -> Tensor:
    """images (N, 1, H, W) -> the same, smoothed by a Gaussian (separable, edges replicated)."""
    radius = max(1, round(2 * sigma))
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-taps**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=3, poly_n=7, poly_sigma=1.5)  # OpenCV's arguments
# poly_n 7 / poly_sigma 1.5 (OpenCV's "bigger neighbourhood" pair) over 5 / 1.1: the lower flow error on small actors in
# cluttered clips at 96 px (1.12 against 1.25 px, both measured the same way, actors moving 2.5 px a frame)
GREY_GAIN = 40.0  # uint8 levels per clip standard deviation: the grey image Farneback reads spans +-3.2 deviations


def farneback(grey: np.ndarray, start: np.ndarray) -> np.ndarray:
    """grey (T, H, W) uint8, start (T-1, 2) -> dense flow (T-1, H, W, 2) float32 = (dx, dy) pixels from frame t to t+1,
    with frame_t(x) ~ frame_t+1(x + flow(x)).

    Farnebäck's polynomial expansion (2003), OpenCV's implementation: each neighbourhood is fitted with a quadratic,
    and the shift between two frames' fits, coarse to fine over a pyramid, is the flow. Every pixel's search starts
    at `start` (the camera's pan). It replaced a pyramidal Lucas-Kanade of ours: on small actors in cluttered clips
    at 96 px, mean error 0.94 px against 1.27, and twice as fast.
    """
    flows = []
    for t in range(len(grey) - 1):
        guess = np.broadcast_to(start[t].astype(np.float32), (*grey.shape[1:], 2)).copy()
        flows.append(cv2.calcOpticalFlowFarneback(grey[t], grey[t + 1], guess, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
                                                  **FARNEBACK))
    return np.stack(flows) if flows else np.zeros((0, *grey.shape[1:], 2), np.float32)


CHANGE = 1.8  # summed absolute RGB change at which a pixel counts as fully moving: clip-normalised units (0.3 of
# the 0..1 range at a typical clip's deviation of 0.17)
CHANGE_REACH = 2  # pixels: a pixel counts as changed if one this near did; a plain actor's inside does not change
OPPONENT = ((1.0, 1.0, 1.0), (1.0, -1.0, 0.0), (1.0, 1.0, -2.0))  # luminance, red-green, yellow-blue (rows of RGB)
CHANNEL_POWER = 4.0  # a channel's say in a pixel's flow grows with its change there to this power: the channel the
# moving thing shows in wins (2: 1.45 px actor error, 4: 1.43, 8: 1.43, against 2.13 for luminance alone)
LUMINANCE_FLOOR = 0.05  # where no channel changed, luminance's flow (the moving weight makes it small there anyway)
NOISE_FLOOR = 4.0  # a channel's change counts above this many times its median over the clip: most pixels hold still,
# so the median is the channel's noise. Without it, sensor noise on a nearly grey clip gave its flat colour channels
# (flow of noise) as much say as luminance: on a grey world with a bright square and noise of 2-8 levels, the
# square's flow error was 0.6 px against luminance alone's 0.03; with it 0.03, and the background's false flow as
# luminance alone's (0.07-0.37 px), while the cluttered actors' error stayed 1.61 px against 2.07 for luminance


def opponent_channels(frames: Tensor) -> Tensor:
    """(B, T, 3, H, W) RGB -> (B, T, 3, H, W): luminance, red-green and yellow-blue (OPPONENT's rows, unit length)."""
    rows = torch.tensor(OPPONENT, dtype=frames.dtype, device=frames.device).view(-1, 3)
    return torch.einsum("oc,btchw->btohw", rows / rows.norm(dim=1, keepdim=True), frames)


def _nearby(change: Tensor) -> Tensor:
    """(..., H, W) change -> the same, as the most within CHANGE_REACH pixels, smoothed: a plain actor's inside,
    which does not change as it moves, counts as changed like its edges."""
    flat = change.reshape(-1, 1, *change.shape[-2:])
    spread = F.max_pool2d(flat, 2 * CHANGE_REACH + 1, stride=1, padding=CHANGE_REACH)
    return _blurred(spread, 1.0).view(change.shape)


def scene_flow(frames: Tensor) -> Tensor:
    """(B, T, C, H, W), clip-normalised -> (B, T, 2, H, W): how each pixel moved in the scene from frame t-1 to
    frame t, (dx, dy) pixels at frame t-1's pixels, with the camera's pan taken out; zero for the first frame.

    Unlike a difference image, whose sign depends on the colours of the thing and what is behind it, flow
    gives the *direction* of motion, appearance-free: the same for a red actor on grass as for a blue one on
    sand, so a small set cannot be memorised by its colours. A flow method guesses in flat or unchanged areas
    too, so the flow is weighted by how much the stabilised frames changed there or nearby (saturating at
    CHANGE): where nothing changed, nothing moved.

    Farnebäck reads one channel, and brightness alone misses a thing that differs from its background in hue only
    (a red actor on green grass of the same brightness). So colour frames are split into luminance and two
    opponent colour channels (OPPONENT), each has its own flow, and each pixel takes them weighted by how much each
    channel changed there above its noise (CHANNEL_POWER, NOISE_FLOOR): the channel the moving thing shows in.
    Measured on 60 cluttered clips against the renderer's true path: actor error 2.13 px with luminance alone, 1.43
    with the three (the swings 2.7-2.9 to 1.5-1.6), for three times the flow's time.
    """
    B, T, C, H, W = frames.shape
    if T < 2:
        return frames.new_zeros(B, T, 2, H, W)
    frames = frames.detach().float()
    shifts = camera_shifts(frames)  # (B, T-1, 2): (dy, dx)
    pan = shifts.flip(-1)  # (dx, dy)
    stable = stabilised_differences(frames, shifts)[:, 1:]  # (B, T-1, C, H, W)
    moving = (_nearby(stable.abs().sum(dim=2)) / CHANGE).clamp(max=1)  # (B, T-1, H, W)
    channels, channel_change = (opponent_channels(frames), opponent_channels(stable)) if C == 3 else (frames, stable)
    centre = channels.mean(dim=(1, 3, 4), keepdim=True)
    spread = channels.std(dim=(1, 3, 4), keepdim=True) + 1e-3  # each channel in its own clip's deviations
    change = channel_change.abs()  # in the clip's normalised units, the same for every channel
    noise = change.flatten(-2).median(dim=-1).values.median(dim=1, keepdim=True).values[..., None, None]  # (B,1,C,1,1)
    weights = _nearby((change - NOISE_FLOOR * noise).clamp_min(0)) ** CHANNEL_POWER  # (B, T-1, C, H, W)
    weights[:, :, 0] += LUMINANCE_FLOOR
    grey = (((channels - centre) / spread) * GREY_GAIN + 128).clamp(0, 255).round().to(torch.uint8).cpu().numpy()
    start = pan.cpu().numpy()
    flows = torch.from_numpy(np.stack([np.stack([farneback(grey[b, :, c], start[b]) for c in range(grey.shape[2])])
                                       for b in range(B)])).to(frames.device)  # (B, C, T-1, H, W, 2)
    flows = flows.permute(0, 2, 1, 5, 3, 4)  # (B, T-1, C, 2, H, W)
    flow = (flows * weights[:, :, :, None]).sum(dim=2) / weights.sum(dim=2)[:, :, None]
    flow = (flow - pan[..., None, None]) * moving[:, :, None]
    return torch.cat([frames.new_zeros(B, 1, 2, H, W), flow], dim=1)


def clip_normalised(frames: Tensor) -> Tensor:
    """(B, T, C, H, W) uint8 RGB -> float: each colour channel standardised by the clip's own mean and deviation over
    all its frames and pixels (the model's normalize "clip", and what scene_flow's thresholds are measured in)."""
    x = frames.float() / 255
    return (x - x.mean(dim=(1, 3, 4), keepdim=True)) / (x.std(dim=(1, 3, 4), keepdim=True) + 1e-3)


def clip_flow(frames: Tensor) -> Tensor:
    """(B, T, C, H, W) uint8 RGB -> scene flow (B, T, 2, H, W): the one definition the flow cache and the model's
    on-the-fly path share, so a cached clip and a raw one give the same flow whatever the model's normalize."""
    return scene_flow(clip_normalised(frames))


def with_turning(flow: Tensor) -> Tensor:
    """(B, T, 2, H, W) flow -> (B, T, 4, H, W): each pixel's flow with how it turned since the step before, the
    cross and dot products of the flow at t-1 and at t there (signed square roots, so in pixels like the flow; zero
    at t = 0).

    Turning is what a convolution over flow finds hard to learn (a product of two inputs), and what tells a circle's
    direction: a clockwise circle turns one way every frame, an anticlockwise one the other, a swing or a straight
    drift not at all. A small actor moves a pixel or two a frame, so its flow at t-1 and at t overlap at a pixel.
    """
    before = torch.cat([torch.zeros_like(flow[:, :1]), flow[:, :-1]], dim=1)
    cross = before[:, :, 0] * flow[:, :, 1] - before[:, :, 1] * flow[:, :, 0]  # (B, T, H, W): + turning one way
    dot = (before * flow).sum(dim=2)  # + going on, - turning back

    def signed_root(x: Tensor) -> Tensor:
        return x.sign() * x.abs().sqrt()

    return torch.cat([flow, signed_root(cross)[:, :, None], signed_root(dot)[:, :, None]], dim=2)


def stacked(motion: Tensor, steps: int) -> Tensor:
    """(B, T, C, H, W) -> (B, T, steps * C, H, W): each step with the steps-1 before it as more channels (zeros
    before the first), oldest first.

    Early temporal fusion, as in two-stream networks' stacked optical flow (Simonyan & Zisserman 2014): one
    convolution then sees a piece of a trajectory, so it can tell a velocity that changes (an actor circling or
    swinging) from one that does not (a drifting distractor) where it happens, before pooling mixes them.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    padded = torch.cat([motion.new_zeros(motion.shape[0], steps - 1, *motion.shape[2:]), motion], dim=1)
    T = motion.shape[1]
    return torch.cat([padded[:, k:k + T] for k in range(steps)], dim=2)
