"""Motion streams computed from the frames themselves: differences on the fly (cheap at cached sizes); scene flow
(about 8 ms a frame pair at 64 x 64 on one core, which would bound training) once per clip into the flow cache
(tasks/video/flow_cache.py), or on the fly when a raw video is classified.

Shapes: B clips, T frames, C channels, H x W frame size.
"""
from __future__ import annotations

import math

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

    shifts = torch.stack([refined(rows, th, lambda r: value(r, cols)), refined(cols, tw, lambda c: value(rows, c))], dim=-1)
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


def stabilised_differences(frames: Tensor) -> Tensor:
    """(B, T, C, H, W) -> (B, T, C, H, W): frame t minus frame t-1 moved by the camera's shift between them, so
    a panning camera's background cancels and what moves *in the scene* remains; zero for the first frame and
    where frame t-1 had no picture (the strip the pan brought in)."""
    B, T, C, H, W = frames.shape
    if T < 2:
        return torch.zeros_like(frames)
    shifts = camera_shifts(frames)  # (B, T-1, 2)
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


def _warped(images: Tensor, flow: Tensor) -> Tensor:
    """images (N, 1, H, W) sampled at x + flow(x), flow (N, 2, H, W) = (dx, dy) pixels (bilinear, edges held)."""
    N, _, H, W = images.shape
    ys, xs = torch.meshgrid(torch.arange(H, device=images.device, dtype=images.dtype),
                            torch.arange(W, device=images.device, dtype=images.dtype), indexing="ij")
    grid = torch.stack([(xs + flow[:, 0]) * 2 / (W - 1) - 1, (ys + flow[:, 1]) * 2 / (H - 1) - 1], dim=-1)
    return F.grid_sample(images, grid, align_corners=True, padding_mode="border")


def lucas_kanade(previous: Tensor, following: Tensor, start: Tensor, *, levels: int = 3, iterations: int = 4,
                 sigma: float = 1.5, damping: float = 1e-3) -> Tensor:
    """previous, following (N, 1, H, W) grey, start (N, 2) -> dense flow (N, 2, H, W) = (dx, dy) pixels, with
    previous(x) ~ following(x + flow(x)).

    Pyramidal Lucas-Kanade (Bouguet 2001): at each level of a 2x pyramid, from the coarsest, solve the 2 x 2
    least-squares system of the brightness-constancy equation over a Gaussian window, warp, repeat. The pyramid
    is what reaches displacements of several pixels (a small actor at 64 px moves 2 to 8 a frame); `start` (the
    camera's pan) is where every pixel's search begins; `damping` keeps flat patches, which say nothing, near it.
    """
    pyramid = [(previous, following)]
    for _ in range(levels - 1):
        pyramid.append(tuple(F.avg_pool2d(image, 2) for image in pyramid[-1]))
    scale = 2 ** (levels - 1)
    flow = (start / scale)[:, :, None, None].expand(-1, -1, *pyramid[-1][0].shape[-2:])  # (N, 2, h, w)
    for p, q in reversed(pyramid):
        if flow.shape[-2:] != p.shape[-2:]:
            flow = 2 * F.interpolate(flow, size=p.shape[-2:], mode="bilinear", align_corners=False)
        padded_x, padded_y = F.pad(p, (1, 1, 0, 0), mode="replicate"), F.pad(p, (0, 0, 1, 1), mode="replicate")
        ix, iy = (padded_x[..., 2:] - padded_x[..., :-2]) / 2, (padded_y[..., 2:, :] - padded_y[..., :-2, :]) / 2
        ixx, ixy, iyy = (_blurred(a, sigma) for a in (ix * ix, ix * iy, iy * iy))  # the structure tensor
        det = (ixx + damping) * (iyy + damping) - ixy**2
        for _ in range(iterations):
            it = _warped(q, flow) - p
            bx, by = -_blurred(ix * it, sigma), -_blurred(iy * it, sigma)
            step = torch.cat([(iyy + damping) * bx - ixy * by, (ixx + damping) * by - ixy * bx], dim=1) / det
            flow = flow + step.clamp(-2, 2)  # at most 2 pixels of this level per iteration: no wild jumps
    return flow


CHANGE = 1.8  # summed absolute RGB change at which a pixel counts as fully moving: clip-normalised units (0.3 of
# the 0..1 range at a typical clip's deviation of 0.17)


def scene_flow(frames: Tensor) -> Tensor:
    """(B, T, C, H, W), clip-normalised -> (B, T, 2, H, W): how each pixel moved in the scene from frame t-1 to
    frame t, (dx, dy) pixels, with the camera's pan taken out; zero for the first frame.

    Unlike a difference image, whose sign depends on the colours of the thing and what is behind it, flow
    gives the *direction* of motion, appearance-free: the same for a red actor on grass as for a blue one on
    sand, so a small set cannot be memorised by its colours. Lucas-Kanade guesses in flat or unchanged areas
    too, so the flow is weighted by how much the stabilised frames changed there (saturating at CHANGE): where
    nothing changed, nothing moved.
    """
    B, T, C, H, W = frames.shape
    if T < 2:
        return frames.new_zeros(B, T, 2, H, W)
    pan = camera_shifts(frames).flip(-1)  # (B, T-1, 2): (dx, dy)
    grey = frames.float().mean(dim=2)
    grey = (grey - grey.mean(dim=(1, 2, 3), keepdim=True)) / (grey.std(dim=(1, 2, 3), keepdim=True) + 1e-3)
    grey = _blurred(grey.flatten(0, 1)[:, None], 0.8).view(B, T, 1, H, W)  # less pixel noise
    flow = lucas_kanade(grey[:, :-1].flatten(0, 1), grey[:, 1:].flatten(0, 1), pan.flatten(0, 1))
    flow = flow.view(B, T - 1, 2, H, W) - pan[..., None, None]  # (B, T-1, 2, H, W): the pan taken out
    change = stabilised_differences(frames.float())[:, 1:].abs().sum(dim=2)  # (B, T-1, H, W)
    moving = (_blurred(change.flatten(0, 1)[:, None], 1.0).view(B, T - 1, 1, H, W) / CHANGE).clamp(max=1)
    return torch.cat([frames.new_zeros(B, 1, 2, H, W), (flow * moving).to(frames.dtype)], dim=1)


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
