"""Video data: clips -> a fixed number of frames each, cropped, as uint8 batches (the model normalises).

Shapes: B clips, T sampled frames, C = 3 colour channels, h x w the crop.
prepare_data renders the synthetic corpus (when no root is given) and decodes every clip once into the
frame cache (tasks/video/decode.py), and, when the model reads flow, computes every clip's flow once into the
flow cache (tasks/video/flow_cache.py); setup and the epochs only read those caches, never a video file.
"""
from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from tasks.common.atomic import builds_cache_once
from tasks.common.caching import stamp_digest
from tasks.common.errors import InputError
from tasks.common.sharding import plain_loader
from tasks.common.splits import SplitDataModule
from tasks.common.workers import run_on_files
from tasks.video.clips import SPLITS, VIDEO_SUFFIXES, Clip, class_names, list_clips
from tasks.video.decode import cache_clip, cache_folder, cached
from tasks.video.flow_cache import cache_flow, fits, flow_file, flow_folder, frames_shape, load_flow
from tasks.video.render import CLASSES as SYNTH_CLASSES
from tasks.video.render import STYLES
from tasks.video.render import VERSION as SYNTH_VERSION
from tasks.video.render import render_corpus, style_motions
from tasks.video.render_cluttered import CLUTTERED_CLASSES


class Batch(NamedTuple):
    frames: torch.Tensor  # (B, T, C, h, w) uint8 RGB
    labels: torch.Tensor  # (B,) long
    index: torch.Tensor  # (B,) long: position of each clip in data.clips[split]
    flow: Optional[torch.Tensor] = None  # (B, T, 2, h, w) float16 (dx, dy) pixels, from the flow cache; None: not read


def sample_indices(count: int, wanted: int, offset: Optional[float] = None) -> list[int]:
    """`wanted` frame indices on an even grid over range(count): k * count / wanted + offset * count / wanted.

    offset None (evaluation) takes the centre of each share, 0.5; training draws it from [0, 1) per clip, so
    the same clip is seen at shifted times. Fewer frames than wanted repeat some.
    """
    step = count / wanted
    offset = 0.5 if offset is None else offset
    return [min(count - 1, int((k + offset) * step)) for k in range(wanted)]


def crop_box(height: int, width: int, crop: int, corner: Optional[tuple[float, float]] = None) -> tuple[int, int]:
    """Top-left corner of a crop x crop square: the centre, or (fractions of the slack) for a random crop."""
    fy, fx = (0.5, 0.5) if corner is None else corner
    return int(fy * (height - crop + 1 - 1e-9)), int(fx * (width - crop + 1 - 1e-9))


class View(NamedTuple):
    """Which part of a cached clip an item is: drawn once per access, applied alike to its frames and its flow."""
    indices: list[int]  # T frame indices into the cached clip
    top: int
    left: int
    crop: int
    mirror: bool  # flipped left to right


def draw_view(shape: tuple[int, ...], frames: int, crop: int, *, train: bool, flip: bool) -> View:
    """shape (N, H, W, ...) of a cached clip -> the view an item shows: evaluation the uniform frames and the centre
    crop; training a time offset, crop position and (with flip) mirror drawn from torch's generator."""
    if not train:
        top, left = crop_box(shape[1], shape[2], crop)
        return View(sample_indices(shape[0], frames), top, left, crop, False)
    offset, fy, fx, mirror = torch.rand(4).tolist()
    top, left = crop_box(shape[1], shape[2], crop, (fy, fx))
    return View(sample_indices(shape[0], frames, offset), top, left, crop, flip and mirror < 0.5)


def take(clip: np.ndarray, view: View, *, flow: bool = False) -> torch.Tensor:
    """A cached clip (N, H, W, C), frames or flow, -> its view (T, C, h, w). Mirrored flow has dx (channel 0)
    negated: what moved right in the clip moves left in its mirror image."""
    part = clip[view.indices, view.top : view.top + view.crop, view.left : view.left + view.crop]  # (T, h, w, C)
    if view.mirror:
        part = part[:, :, ::-1]
        if flow:
            part = part * np.array([-1, 1], dtype=part.dtype)
    return torch.from_numpy(np.ascontiguousarray(part)).permute(0, 3, 1, 2)


def eval_view(clip: np.ndarray, frames: int, crop: int) -> torch.Tensor:
    """What evaluation and `classify` see of a cached clip (N, H, W, C), frames or flow: uniform frames, the
    centre crop -> (T, C, h, w)."""
    return take(clip, draw_view(clip.shape, frames, crop, train=False, flip=False))


class VideoDataset(Dataset):
    """Cached clips of one split; item i -> (frames (T, C, h, w) uint8, label, i), and with flow_files its flow
    (T, 2, h, w) float16 too.

    Training draws a time offset, a crop position, (with flip) a mirror and (with colour_jitter) colour gains
    per access, from torch's generator (seeded per DataLoader worker), each the same for every frame of the
    clip, and the flow gets the same view (draw_view, take); evaluation is the same every time. Flow was computed
    before any colour jitter, which leaves motion as it is.
    """

    def __init__(self, files: list[Path], labels: list[int], *, frames: int, crop: int, train: bool, flip: bool,
                 colour_jitter: float = 0.0, flow_files: Optional[list[Path]] = None):
        self.files, self.labels, self.frames, self.crop, self.train, self.flip = files, labels, frames, crop, train, flip
        self.colour_jitter, self.flow_files = colour_jitter, flow_files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        clip = np.load(self.files[i])  # (N, H, W, 3) uint8
        view = draw_view(clip.shape, self.frames, self.crop, train=self.train, flip=self.flip)
        frames = take(clip, view)  # (T, C, h, w)
        if self.train and self.colour_jitter:
            gains = 1 + self.colour_jitter * (2 * torch.rand(1, 3, 1, 1) - 1)
            shift = 255 * self.colour_jitter * (2 * torch.rand(()) - 1)
            frames = (frames.float() * gains + shift).round().clamp(0, 255).to(torch.uint8)
        if self.flow_files is None:
            return frames, self.labels[i], i
        flow = take(load_flow(self.flow_files[i], clip.shape), view, flow=True)  # (T, 2, h, w) float16
        return frames, self.labels[i], i, flow


def collate_clips(items: list[tuple]) -> Batch:
    frames, labels, positions, *flow = zip(*items)
    return Batch(torch.stack(frames), torch.tensor(labels), torch.tensor(positions),
                 torch.stack(flow[0]) if flow else None)


class VideoDataModule(SplitDataModule):
    """Video files in class folders -> Batches of sampled, cropped frames: synthetic motion clips by default.

    Args:
        root: the folder of class folders, root/<class name>/<clip>.{avi,mp4,mkv,webm} (UCF101, HMDB51,
            your own). None: the synthetic corpus, rendered as MP4 files into cache_dir on first use.
        splits_dir: the folder of official split files: UCF101's ucfTrainTestlist (trainlist01.txt,
            testlist01.txt) or HMDB51's testTrainMulti_7030_splits (<class>_test_split1.txt). None: each
            class is split by a stable hash of its clip groups.
        split: which official split (1, 2 or 3).
        val_fraction: share of each class's training clips held out for validation (whole groups).
        test_fraction: share of each class for the test split, when there are no split files (and the
            test share of the synthetic corpus).
        synth_style: "plain" (one shape moving on a still background) or "cluttered" (a small actor whose way of
            moving is the class, a panning camera, textures and two drifting distractors: render_cluttered.py).
        synth_classes: the motions of the synthetic corpus, one class each (None: the style's defaults; plain:
            the 10 of render.CLASSES, 8 directions, Grow, Shrink, with RotateClockwise and RotateAnticlockwise
            there too, and harder; cluttered: its 6).
        synth_clips_per_class: clips of each synthetic class.
        synth_frames: frames per synthetic clip.
        synth_size: synthetic frame size in pixels (square, even).
        frames: frames sampled per clip (T): evenly spaced, at a random offset in training.
        cache_frames: frames kept per clip in the cache, evenly spaced; the T sampled come from these.
        cache_fps: keep frames at this rate instead (consecutive, from the middle of each clip, at most
            cache_frames of them): motion is then sampled alike in short and long videos (None: spread evenly).
        height: cached frame height (clips are resized to height x width when decoded).
        width: cached frame width.
        crop: the square the model sees: a random crop in training, the centre one in evaluation.
        flip: mirror half of the training clips. Off by default: a mirror image turns moving left into moving
            right and clockwise into anticlockwise, so only where mirrored activities are the same ones (UCF101).
        colour_jitter: training clips get random per-channel gains and a brightness shift of up to this
            share, the same in every frame of a clip, so motion is untouched (0 = off).
        inputs: the model's inputs (the CLI copies --model.inputs here): when they include flow, prepare_data also
            computes each clip's scene flow once into the flow cache, and batches carry it (Batch.flow).
        batch_size: clips per batch.
        num_workers: DataLoader worker processes (persistent: they live across epochs).
        prepare_workers: processes that render and decode in prepare_data (0 = one per core).
        cache_dir: where the synthetic corpus and the frame cache are kept.
        seed: draws the synthetic corpus, and the training order.
    """

    def __init__(
        self,
        *,
        root: Optional[str] = None,
        splits_dir: Optional[str] = None,
        split: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        synth_style: str = "plain",
        synth_classes: Optional[list[str]] = None,
        synth_clips_per_class: int = 300,
        synth_frames: int = 16,
        synth_size: int = 64,
        frames: int = 8,
        cache_frames: int = 16,
        cache_fps: Optional[float] = None,
        height: int = 48,
        width: int = 48,
        crop: int = 44,
        flip: bool = False,
        colour_jitter: float = 0.0,
        inputs: str = "rgb",
        batch_size: int = 32,
        num_workers: int = 2,
        prepare_workers: int = 0,
        cache_dir: str = "~/.cache/lstm-suite/video",
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if cache_fps is not None and not cache_fps > 0:
            raise InputError(f"cache_fps {cache_fps}: must be above 0 (or null: frames spread over the whole clip)")
        if frames < 1 or cache_frames < frames:
            raise InputError(f"frames {frames} and cache_frames {cache_frames}: need 1 <= frames <= cache_frames")
        if not 0 < crop <= min(height, width):
            raise InputError(f"crop {crop}: must fit in the cached frames, {height} x {width}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
            raise InputError(f"val_fraction {val_fraction} and test_fraction {test_fraction}: each must be in [0, 1)")
        if synth_style not in STYLES:
            raise InputError(f"synth_style {synth_style!r}: choose one of {', '.join(STYLES)}")
        if not 0 <= colour_jitter < 1:
            raise InputError(f"colour_jitter {colour_jitter}: must be in [0, 1)")
        motions = style_motions(synth_style)
        unknown = sorted(set(synth_classes or ()) - set(motions))
        if unknown or (synth_classes is not None and len(set(synth_classes)) < 2):
            raise InputError(f"synth_classes {unknown or synth_classes}: choose 2 or more of {', '.join(motions)} "
                             f"(synth_style {synth_style})")
        if splits_dir and not root:
            raise InputError("splits_dir needs root, the folder of class folders the split files refer to")
        self.clips: dict[str, list[Clip]] = {}  # after setup(): the usable clips of each split
        self.datasets: dict[str, VideoDataset] = {}

    # ---- what the model is linked to ----

    @property
    def class_names(self) -> list[str]:
        if self.hparams.root is None:
            default = SYNTH_CLASSES if self.hparams.synth_style == "plain" else CLUTTERED_CLASSES
            return sorted(set(self.hparams.synth_classes or default))
        return class_names(self.hparams.root)

    @property
    def frames(self) -> int:
        return self.hparams.frames

    @property
    def cache_frames(self) -> int:
        return self.hparams.cache_frames

    @property
    def cache_fps(self) -> Optional[float]:
        return self.hparams.cache_fps

    @property
    def height(self) -> int:
        return self.hparams.height

    @property
    def width(self) -> int:
        return self.hparams.width

    @property
    def crop(self) -> int:
        return self.hparams.crop

    @property
    def reads_flow(self) -> bool:
        return "flow" in self.hparams.inputs.split("+")

    @property
    def has_test(self) -> bool:
        return bool(self.clips.get("test"))

    # ---- where things are ----

    def _synth_folder(self) -> Path:
        h = self.hparams
        classes = "-".join(sorted(set(h.synth_classes))) if h.synth_classes else "default"
        stamp = [SYNTH_VERSION, classes, h.synth_clips_per_class, h.synth_frames, h.synth_size, h.test_fraction, h.seed]
        if h.synth_style != "plain":  # (plain corpora keep the names they had before there were styles)
            stamp.append(h.synth_style)
        name = f"synth-{h.synth_style}-" if h.synth_style != "plain" else "synth-"
        name += f"{h.synth_clips_per_class}x{h.synth_frames}x{h.synth_size}-{stamp_digest(stamp, 8)}"
        return Path(h.cache_dir).expanduser() / name

    def describe(self) -> str:
        return "synthetic clips" if self.hparams.root is None else str(Path(self.hparams.root).expanduser())

    def _listing(self) -> tuple[dict[str, list[Clip]], dict[str, list[str]]]:
        h = self.hparams
        if h.root is None:
            folder = self._synth_folder()
            return list_clips(folder, splits_dir=folder, val_fraction=h.val_fraction)
        return list_clips(h.root, splits_dir=h.splits_dir, split=h.split, val_fraction=h.val_fraction,
                          test_fraction=h.test_fraction)

    def _cache(self) -> Path:
        h = self.hparams
        return cache_folder(h.cache_dir, frames=h.cache_frames, height=h.height, width=h.width, fps=h.cache_fps)

    # ---- building the cache ----

    @builds_cache_once
    def prepare_data(self) -> None:
        h = self.hparams
        if h.root is None:
            render_corpus(self._synth_folder(), classes=self.class_names, clips_per_class=h.synth_clips_per_class,
                          frames=h.synth_frames, size=h.synth_size, test_fraction=h.test_fraction, seed=h.seed,
                          workers=h.prepare_workers, style=h.synth_style)
        listing, _ = self._listing()
        folder = self._cache()
        folder.mkdir(parents=True, exist_ok=True)
        paths = [str(c.path) for split in SPLITS for c in listing[split]]
        todo = [p for p in dict.fromkeys(paths) if not any(f.exists() for f in cached(folder, p))]
        if todo:
            self._decode(folder, todo)
        if self.reads_flow:
            self._prepare_flow(paths)

    def _decode(self, folder: Path, todo: list[str]) -> None:
        h = self.hparams
        decode = partial(cache_clip, folder=str(folder), frames=h.cache_frames, height=h.height, width=h.width,
                         fps=h.cache_fps)
        _, failures = run_on_files(decode, todo, desc=f"Decoding {len(todo)} clips into the frame cache (once)",
                                  workers=h.prepare_workers)
        unmarked = {path: reason for path, reason in failures.items() if not cached(folder, path)[1].exists()}
        if unmarked:  # unreadable clips are marked .bad by cache_clip; these failed for another reason
            path, reason = next(iter(unmarked.items()))
            raise OSError(f"could not write {len(unmarked)} clips into the frame cache {folder} (first: {path}: "
                          f"{reason}); they are not marked unreadable: fix the cause and run again")

    def _prepare_flow(self, paths: list[str]) -> None:
        """Every decoded clip's flow entry, computed once (missing ones, and ones that do not fit their frames:
        a killed run's or a foreign file); clips that could not be decoded have no frames and are skipped, counted."""
        frames_folder = self._cache()
        folder = flow_folder(frames_folder)
        folder.mkdir(parents=True, exist_ok=True)
        decoded = [f for f in (cached(frames_folder, p)[0] for p in dict.fromkeys(paths)) if f.exists()]
        skipped = len(dict.fromkeys(paths)) - len(decoded)
        todo = [str(f) for f in decoded if not fits(flow_file(folder, f), frames_shape(f))]
        if not todo:
            return
        note = f", {skipped} skipped (unreadable: no frames)" if skipped else ""
        desc = f"Computing the scene flow of {len(todo)} clips into the flow cache (once){note}"
        _, failures = run_on_files(partial(cache_flow, folder=str(folder)), todo, desc=desc,
                                   workers=self.hparams.prepare_workers)
        if failures:  # their frames were decoded, so the cache, not the clip, is at fault
            path, reason = next(iter(failures.items()))
            raise OSError(f"could not compute the flow of {len(failures)} clips into {folder} (first: frames {path}: "
                          f"{reason}): delete that frame entry to decode it again, or fix the cause, and run again")

    # ---- loading it ----

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        listing, missing = self._listing()
        folder = self._cache()
        names = self.class_names
        usable: dict[str, list[Clip]] = {}
        readable = Counter()
        unreadable: dict[int, tuple[Path, str]] = {}
        for split in SPLITS:
            usable[split], failures = [], {}
            for clip in listing[split]:
                frames_file, bad_file = cached(folder, clip.path)
                if frames_file.exists():
                    usable[split].append(clip)
                    readable[clip.label] += 1
                elif bad_file.exists():
                    failures[str(clip.path)] = bad_file.read_text(encoding="utf-8").strip()
                    unreadable.setdefault(clip.label, (clip.path, failures[str(clip.path)]))
                else:
                    raise InputError(f"{clip.path} is not in the frame cache {folder}: "
                                     "call prepare_data() before setup()")
            reasons = []
            if failures:
                first, why = next(iter(failures.items()))
                reasons.append(f"{len(failures)} unreadable (first: {first}: {why})")
            if missing.get(split):
                reasons.append(f"{len(missing[split])} in the split file but not on disk (first: {missing[split][0]})")
            if reasons:
                total = len(listing[split]) + len(missing.get(split, []))
                rank_zero_warn(f"skipped {total - len(usable[split])} of {total} clips in {split} of "
                               f"{self.describe()}: " + "; ".join(reasons))
        self._check_classes(names, readable, unreadable, usable)
        self.clips = usable
        self.datasets = {
            split: VideoDataset(files, [c.label for c in clips], frames=h.frames, crop=h.crop, train=split == "train",
                                flip=h.flip and split == "train",
                                colour_jitter=h.colour_jitter if split == "train" else 0.0,
                                flow_files=self._flow_files(files) if self.reads_flow else None)
            for split, clips in usable.items() if clips
            for files in [[cached(folder, c.path)[0] for c in clips]]
        }
        counts = ", ".join(f"{split} {len(clips)}" for split, clips in usable.items())
        rank_zero_info(f"{self.describe()}: {counts} clips in {len(names)} classes; {h.frames} frames of "
                       f"{h.crop}x{h.crop} per clip, from {folder}")

    def _flow_files(self, frames_files: list[Path]) -> list[Path]:
        """The flow entries of a split's frame entries, each checked to exist (its content is checked when read)."""
        folder = flow_folder(self._cache())
        files = [flow_file(folder, f) for f in frames_files]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise InputError(f"{len(missing)} clips are not in the flow cache {folder} (first: {missing[0].name}): "
                             "call prepare_data() before setup()")
        return files

    def _check_classes(self, names: list[str], readable: Counter, unreadable: dict, usable: dict) -> None:
        """Every class needs a readable clip, and one for training; the error names the folder."""
        root = self._synth_folder() if self.hparams.root is None else Path(self.hparams.root).expanduser()
        for label, name in enumerate(names):
            if readable[label]:
                continue
            if label in unreadable:
                path, reason = unreadable[label]
                raise InputError(f"class folder {root / name}: no readable clip (e.g. {path.name}: {reason})")
            files = [p for p in (root / name).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
            raise InputError(f"class folder {root / name}: no readable clip (" + (
                f"{len(files)} video files, none of them in the split files)" if files else
                f"no {', '.join(VIDEO_SUFFIXES)} files in it)"))
        untrained = [names[label] for label in range(len(names)) if not any(c.label == label for c in usable["train"])]
        if untrained:
            raise InputError(f"class folder {root / untrained[0]}: no readable training clip "
                             f"({len(untrained)} classes have none: {', '.join(untrained[:5])})")

    def split_loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            hint = {"val": " (raise val_fraction)", "test": " (raise test_fraction, or give split files)"}.get(split, "")
            raise InputError(f"{self.describe()}: no {split} clips{hint}")
        h = self.hparams
        return plain_loader(self.datasets[split], self.trainer, train=split == "train", batch_size=h.batch_size,
                            seed=h.seed, collate_fn=collate_clips, num_workers=h.num_workers,
                            pin_memory=torch.cuda.is_available())
