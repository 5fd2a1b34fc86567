"""Video data: the synthetic corpus (real MP4 files, classes only motion tells apart), the folder layout and
UCF101/HMDB51 split files, frame sampling, the frame cache (a second epoch decodes nothing), corrupt files
skipped with a count, and a class folder without a readable clip. Clips are generated, tiny."""
import av
import numpy as np
import pytest
import torch

from tasks.common.errors import InputError
from tasks.video import decode as decode_module
from tasks.video.clips import list_clips
from tasks.video.data import VideoDataModule, sample_indices
from tasks.video.decode import decode_clip, even_indices
from tasks.video.render import CLASSES, MOTIONS, render_clip, render_corpus, trajectory, write_video

SMALL = dict(frames=4, cache_frames=8, height=32, width=32, crop=28, batch_size=4, num_workers=0, prepare_workers=1)


def write_clips(root, classes=("Jump", "Run", "Wave"), groups=2, per_group=2, frames=8, size=32):
    """UCF101-style root/<class>/v_<class>_gNN_cMM.mp4, each class a motion of the synthetic corpus."""
    paths = []
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for g in range(1, groups + 1):
            for c in range(1, per_group + 1):
                path = root / name / f"v_{name}_g{g:02d}_c{c:02d}.mp4"
                write_video(render_clip(CLASSES[k], (k, g, c), frames=frames, size=size), path)
                paths.append(path)
    return paths


def count_decodes(monkeypatch) -> list:
    calls = []
    real = decode_module.decode_clip

    def counted(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(decode_module, "decode_clip", counted)
    return calls


# ---- the synthetic corpus ----

def test_synthetic_corpus_is_real_mp4_files_in_the_ucf101_layout(tmp_path):
    folder = render_corpus(tmp_path / "synth", clips_per_class=3, frames=6, size=32, test_fraction=0.34, workers=1)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == list(CLASSES) and len(CLASSES) >= 8
    clips = sorted(folder.rglob("*.mp4"))
    assert len(clips) == 3 * len(CLASSES)
    with av.open(str(clips[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3)
    train = (folder / "trainlist01.txt").read_text().splitlines()
    test = (folder / "testlist01.txt").read_text().splitlines()
    assert len(train) == 2 * len(CLASSES) and len(test) == len(CLASSES)
    assert train[0] == f"{CLASSES[0]}/{CLASSES[0]}_0001.mp4 1" and test[0] == f"{CLASSES[0]}/{CLASSES[0]}_0000.mp4"
    assert (folder / "classInd.txt").read_text().splitlines()[1] == f"2 {CLASSES[1]}"


def test_a_single_frame_cannot_tell_the_class():
    for seed in range(5):  # the first frame depends on the seed alone: identical in every class ...
        clips = {motion: render_clip(motion, seed, frames=8, size=32) for motion in MOTIONS}
        first = clips[CLASSES[0]][0]
        assert all(np.array_equal(clip[0], first) for clip in clips.values())
        last = [clip[-1].astype(int) for clip in clips.values()]  # ... and motion makes every class different later
        assert all((np.abs(a - b).max(axis=-1) > 40).sum() >= 4 for i, a in enumerate(last) for b in last[i + 1 :])
    # positions wrap around, so where the shape is in the last frame is spread evenly whichever way it moved
    for motion in ("MoveLeft", "MoveRight", "MoveUp", "MoveDown"):
        rng = np.random.default_rng(0)
        ends = np.array([trajectory(motion, rng, 16, 64)[:2] for _ in range(800)])[:, :, -1]  # (800, 2): x, y
        quarters = np.stack([np.histogram(ends[:, axis], bins=4, range=(0, 64))[0] for axis in (0, 1)]) / len(ends)
        assert np.all(np.abs(quarters - 0.25) < 0.06), (motion, quarters)


def test_motions_move_the_way_they_are_named():
    rng = np.random.default_rng(0)
    for motion, axis, sign in (("MoveRight", 0, 1), ("MoveLeft", 0, -1), ("MoveDown", 1, 1), ("MoveUp", 1, -1)):
        path = trajectory(motion, rng, 8, 64)
        steps = (np.diff(path[axis]) + 32) % 64 - 32  # through the wrap-around
        assert np.all(sign * steps > 0) and np.all(np.diff(path[1 - axis]) == 0), motion
    assert np.all(np.diff(trajectory("RotateClockwise", rng, 8, 64).angle) > 0)  # clockwise on screen, y down
    assert np.all(np.diff(trajectory("Shrink", rng, 8, 64).size) < 0)
    assert np.all(np.diff(trajectory("Grow", rng, 8, 64).size) > 0)


# ---- listing clips ----

def test_folder_layout_is_split_by_group_without_split_files(tmp_path):
    paths = write_clips(tmp_path / "videos", groups=5, per_group=2, frames=4)
    (tmp_path / "videos" / "Run" / "notes.txt").write_text("not a video")
    listing, missing = list_clips(tmp_path / "videos", val_fraction=0.2, test_fraction=0.2)
    assert not any(missing.values())
    assert sorted(c.path for split in listing.values() for c in split) == sorted(p.resolve() for p in paths)
    groups = {split: {c.group for c in clips} for split, clips in listing.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    for split in ("train", "val", "test"):  # every class in every split
        assert {c.label for c in listing[split]} == {0, 1, 2}, split
    assert {c.path.parent.name: c.label for c in listing["train"]} == {"Jump": 0, "Run": 1, "Wave": 2}


def test_ucf101_split_files(tmp_path):
    root = tmp_path / "UCF"
    write_clips(root, groups=3, per_group=1, frames=4)
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "trainlist01.txt").write_text(  # UCF101's lists and folders disagree on case: still found
        "".join(f"{c}/v_{c}_g{g:02d}_c01.mp4 {k + 1}\n" for k, c in enumerate(("jump", "Run", "Wave")) for g in (2, 3))
        + "Run/v_Run_g09_c01.mp4 2\n")
    (lists / "testlist01.txt").write_text("".join(f"{c}/v_{c}_g01_c01.mp4\n" for c in ("Jump", "Run", "Wave")))
    listing, missing = list_clips(root, splits_dir=lists, split=1, val_fraction=0.3)
    assert missing == {"train": ["Run/v_Run_g09_c01.mp4"], "test": []}
    assert [c.path.name for c in listing["test"]] == [f"v_{c}_g01_c01.mp4" for c in ("Jump", "Run", "Wave")]
    assert len(listing["train"]) == len(listing["val"]) == 3
    with pytest.raises(InputError, match="no split 2 in it"):
        list_clips(root, splits_dir=lists, split=2)


def test_hmdb51_split_files(tmp_path):
    root = tmp_path / "hmdb51"
    write_clips(root, classes=("brush_hair", "cartwheel"), groups=3, per_group=1, frames=4)
    lists = tmp_path / "testTrainMulti_7030_splits"
    lists.mkdir()
    for name in ("brush_hair", "cartwheel"):
        (lists / f"{name}_test_split1.txt").write_text(
            f"v_{name}_g01_c01.mp4 2\nv_{name}_g02_c01.mp4 1 \nv_{name}_g03_c01.mp4 0\n")
    listing, missing = list_clips(root, splits_dir=lists, val_fraction=0.0)
    assert [c.path.name for c in listing["train"]] == ["v_brush_hair_g02_c01.mp4", "v_cartwheel_g02_c01.mp4"]
    assert [c.label for c in listing["test"]] == [0, 1] and not listing["val"]
    (lists / "cartwheel_test_split1.txt").write_text("v_cartwheel_g01_c01.mp4 7\n")
    with pytest.raises(InputError, match="cartwheel_test_split1.txt, line 1"):
        list_clips(root, splits_dir=lists)


# ---- frames ----

def test_frame_sampling_uniform_in_evaluation_shifted_in_training():
    assert even_indices(16, 4) == [2, 6, 10, 14] and even_indices(3, 8) == [0, 1, 2]
    assert sample_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]  # evaluation: the centre of each share
    assert sample_indices(16, 8, offset=0.0) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert sample_indices(16, 8, offset=0.99) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_indices(3, 6) == [0, 0, 1, 1, 2, 2]  # a short clip repeats frames
    shifts = {tuple(sample_indices(24, 4, offset=o)) for o in np.linspace(0, 0.999, 50)}
    assert len(shifts) == 6  # every offset within a share of 6 frames


def test_decoding_resizes_and_spreads_frames_evenly(tmp_path):
    clip = np.zeros((12, 32, 48, 3), np.uint8)
    for t in range(12):
        clip[t] = t * 20  # a frame's brightness says which frame it is
    write_video(clip, tmp_path / "c.mp4")
    frames = decode_clip(tmp_path / "c.mp4", frames=4, height=16, width=24)
    assert frames.shape == (4, 16, 24, 3) and frames.dtype == np.uint8
    assert np.allclose(frames.reshape(4, -1).mean(axis=1), [20 * t for t in even_indices(12, 4)], atol=4)
    assert decode_clip(tmp_path / "c.mp4", frames=20, height=16, width=24).shape[0] == 12


# ---- the cache ----

def synthetic(tmp_path, **kwargs) -> VideoDataModule:
    settings = dict(SMALL, synth_clips_per_class=3, synth_frames=8, synth_size=32, test_fraction=0.34,
                    val_fraction=0.5, cache_dir=str(tmp_path / "cache"))
    return VideoDataModule(**{**settings, **kwargs})


def test_cache_means_later_epochs_and_runs_decode_nothing(tmp_path, monkeypatch):
    decodes = count_decodes(monkeypatch)
    data = synthetic(tmp_path)
    data.prepare_data()
    assert len(decodes) == 3 * len(CLASSES)  # every clip once
    data.setup()
    n = len(CLASSES)
    assert [len(data.clips[s]) for s in ("train", "val", "test")] == [n, n, n]

    def no_decoding(*args, **kwargs):
        raise AssertionError("a video file was opened after the cache was built")

    monkeypatch.setattr(av, "open", no_decoding)
    again = synthetic(tmp_path)
    again.prepare_data()  # a second run finds everything cached
    again.setup()
    for epoch in range(2):
        batches = list(again.train_dataloader())
        assert sum(len(b.labels) for b in batches) == n
    assert batches[0].frames.shape == (4, 4, 3, 28, 28) and batches[0].frames.dtype == torch.uint8
    assert len(decodes) == 3 * len(CLASSES)


def test_a_changed_file_or_setting_is_decoded_again(tmp_path, monkeypatch):
    paths = write_clips(tmp_path / "videos", groups=2, per_group=1, frames=4)
    decodes = count_decodes(monkeypatch)
    settings = dict(SMALL, cache_frames=4, root=str(tmp_path / "videos"), cache_dir=str(tmp_path / "cache"))
    VideoDataModule(**settings).prepare_data()
    assert len(decodes) == 6
    write_video(render_clip("Grow", 99, frames=4, size=32), paths[0])  # new content, new size and time
    VideoDataModule(**settings).prepare_data()
    assert len(decodes) == 7
    VideoDataModule(**{**settings, "height": 40}).prepare_data()
    assert len(decodes) == 13


def test_augmentation_only_in_training(tmp_path):
    data = synthetic(tmp_path, num_workers=0)
    data.prepare_data()
    data.setup()
    val = [b.frames for b in data.val_dataloader()]
    assert all(torch.equal(a, b.frames) for a, b in zip(val, data.val_dataloader()))
    train = data.datasets["train"]
    views = {train[0][0].numpy().tobytes() for _ in range(12)}
    assert len(views) > 1  # random crops and time offsets
    assert not train.flip and data.datasets["val"].train is False  # the synthetic classes must not be mirrored
    assert not VideoDataModule(root="x").hparams.flip  # nor real videos unless asked: mirroring swaps left and right


# ---- bad input ----

def corrupt_clips(folder, good):
    """A truncated MP4, random bytes, and an empty file, next to good clips."""
    data = good.read_bytes()
    (folder / "v_truncated_g07_c01.mp4").write_bytes(data[: len(data) // 3])
    (folder / "v_noise_g08_c01.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (folder / "v_empty_g09_c01.mkv").write_bytes(b"")


def test_corrupt_files_are_skipped_with_a_count(tmp_path, recwarn, monkeypatch):
    paths = write_clips(tmp_path / "videos", groups=3, per_group=2, frames=4)
    corrupt_clips(tmp_path / "videos" / "Run", paths[0])
    settings = dict(SMALL, root=str(tmp_path / "videos"), cache_dir=str(tmp_path / "cache"), test_fraction=0.0,
                    val_fraction=0.0)
    data = VideoDataModule(**settings)
    data.prepare_data()
    data.setup()
    messages = [str(w.message) for w in recwarn if "skipped" in str(w.message)]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"skipped 3 of 21 clips in train of {tmp_path / 'videos'}: 3 unreadable (first: ")
    assert len(data.clips["train"]) == 18
    decodes = count_decodes(monkeypatch)
    VideoDataModule(**settings).prepare_data()
    assert decodes == []  # unreadable files are remembered, not tried again


def test_a_class_folder_without_a_readable_clip_is_an_error_naming_it(tmp_path, recwarn):
    paths = write_clips(tmp_path / "videos", groups=2, per_group=1, frames=4)
    for path in tmp_path.glob("videos/Wave/*.mp4"):
        path.unlink()
    corrupt_clips(tmp_path / "videos" / "Wave", paths[0])
    data = VideoDataModule(**dict(SMALL, root=str(tmp_path / "videos"), cache_dir=str(tmp_path / "cache")))
    data.prepare_data()
    with pytest.raises(InputError, match=f"class folder {tmp_path / 'videos' / 'Wave'}: no readable clip"):
        data.setup()
    for path in tmp_path.glob("videos/Wave/*"):
        path.unlink()
    data = VideoDataModule(**dict(SMALL, root=str(tmp_path / "videos"), cache_dir=str(tmp_path / "cache")))
    data.prepare_data()
    with pytest.raises(InputError, match=r"Wave: no readable clip \(no .avi, .mp4, .mkv, .webm files in it\)"):
        data.setup()


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="crop 64: must fit"):
        VideoDataModule(crop=64, height=48, width=48)
    with pytest.raises(InputError, match="need 1 <= frames <= cache_frames"):
        VideoDataModule(frames=16, cache_frames=8)
    with pytest.raises(InputError, match="no such folder"):
        VideoDataModule(root=str(tmp_path / "nothing")).class_names
