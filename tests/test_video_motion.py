"""Motion streams: plain and stabilised frame differences (tasks/video/motion.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks.video import motion
from tasks.video.motion import camera_shifts, farneback, frame_differences, scene_flow, shifted, stabilised_differences
from tasks.video.render_cluttered import world_texture


def panned_clip(shifts: list[tuple[int, int]], size: int = 48, actor=None, shade: float = 1.0) -> torch.Tensor:
    """(1, T, 3, size, size): windows into one textured world at the given (dy, dx) camera positions; optionally
    a 4-pixel square of grey level `shade` at actor[t] = (y, x) in frame coordinates."""
    world = torch.from_numpy(world_texture(np.random.default_rng(0), size)).float().permute(2, 0, 1) / 255
    frames = []
    for t, (dy, dx) in enumerate(shifts):
        frame = torch.roll(world, (dy, dx), dims=(1, 2))[:, :size, :size].clone()
        if actor is not None:
            y, x = actor[t]
            frame[:, y:y + 4, x:x + 4] = shade
        frames.append(frame)
    return torch.stack(frames)[None]


def test_camera_shifts_find_the_pan():
    path = [(0, 0), (2, 3), (4, 6), (5, 10), (5, 13)]
    found = camera_shifts(panned_clip(path))[0]
    expected = torch.tensor([[b[0] - a[0], b[1] - a[1]] for a, b in zip(path, path[1:])], dtype=torch.float)
    torch.testing.assert_close(found, expected, rtol=0, atol=0.25)


def still_camera_clip(T: int = 6, step: int = 2, size: int = 48) -> torch.Tensor:
    """(1, T, 3, size, size): a still camera on a smooth gradient with a little noise, and a sharp 12-pixel square
    moving `step` pixels a frame to the right: the default corpus's kind of scene, and a wall's or the sky's."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.2, 0.8, size)
    frames = []
    for t in range(T):
        frame = torch.stack([ramp[None, :].expand(size, size), ramp[:, None].expand(size, size),
                             torch.full((size, size), 0.5)])
        frame = frame + 0.02 * torch.randn(frame.shape, generator=g)
        frame[:, 18:30, 6 + step * t:18 + step * t] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
        frames.append(frame)
    return torch.stack(frames)[None]


def test_a_still_camera_stays_still_when_a_sharp_shape_moves_over_a_smooth_background():
    """Phase correlation alone follows the shape here (nothing in a smooth background votes for standing still); the
    camera is taken to move only if its shift explains the frames clearly better than no shift."""
    found = camera_shifts(still_camera_clip())[0]
    assert found.abs().max() < 0.25, found
    flow = scene_flow(still_camera_clip())[0, 1:]  # the square's flow points right, where it moved
    moving = flow[:, 0].abs() > 0.5
    assert moving.any() and (flow[:, 0][moving] > 0).float().mean() > 0.8


def test_shifted_moves_content_by_whole_and_sub_pixels():
    image = torch.zeros(1, 16, 16)
    image[0, 5, 7] = 1.0
    moved = shifted(image, torch.tensor([[2.0, -3.0]]))
    assert moved[0].argmax().item() == 7 * 16 + 4
    half = shifted(image, torch.tensor([[0.0, 0.5]]))  # sub-pixel: the mass is shared by columns 7 and 8
    assert float(half[0, 5, 7]) == pytest.approx(float(half[0, 5, 8]), abs=1e-4) and half[0, 5, 7] > 0.3


def test_stabilised_differences_cancel_the_pan_and_keep_the_actor():
    path = [(0, 2 * t) for t in range(6)]  # the camera pans 2 pixels a frame
    actor = [(20, 10 + 3 * t) for t in range(6)]  # a small square moving on its own
    still = panned_clip(path)
    moving = panned_clip(path, actor=actor)
    plain, stable = frame_differences(still), stabilised_differences(still)
    # the background: plain differences are large everywhere, stabilised ones vanish away from the edge strip
    inner = (slice(None), slice(1, None), slice(None), slice(4, -4), slice(4, -4))
    assert plain[inner].abs().mean() > 0.02
    assert stable[inner].abs().mean() < 0.1 * plain[inner].abs().mean()
    # the actor: what remains of a moving clip is where the square is
    remains = stabilised_differences(moving)[0, 3].abs().sum(0)  # (H, W)
    y, x = divmod(int(remains.argmax()), remains.shape[1])
    assert 18 <= y <= 25 and 14 <= x <= 26, (y, x)
    assert remains[16:28, 14:30].sum() > 0.5 * remains.sum()


def test_stabilised_differences_are_zero_for_the_first_frame_and_a_one_frame_clip():
    clip = panned_clip([(0, 0), (1, 1)])
    assert torch.equal(stabilised_differences(clip)[:, 0], torch.zeros_like(clip[:, 0]))
    assert torch.equal(stabilised_differences(clip[:, :1]), torch.zeros_like(clip[:, :1]))


def test_a_keypoints_only_frame_encoder_sees_where_not_what():
    from tasks.video.backbones import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(channels=(4, 8), grid=0, keypoints=True, feature_size=6).eval()
    assert net.project[1].in_features == 3 * 8  # x, y and mean of each channel: nothing else
    square = torch.zeros(2, 3, 16, 16)
    square[0, :, 2:6, 2:6] = 1.0
    square[1, :, 10:14, 10:14] = 1.0  # the same square elsewhere
    with torch.no_grad():
        features = net(square)
    assert (features[0] - features[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="grid"):
        SmallCNN(grid=0, keypoints=False)


def test_farneback_finds_a_shift_of_several_pixels_from_where_the_search_starts():
    world = world_texture(np.random.default_rng(1), 48).mean(-1)  # (96, 96)
    grey = np.clip(world, 0, 255).astype(np.uint8)[:48, :48]
    moved = np.roll(grey, (2, 5), axis=(0, 1))  # content moves 5 right, 2 down
    for start in ([0.0, 0.0], [4.0, 1.0]):  # no guess, and the camera's pan as one
        flow = farneback(np.stack([grey, moved]), np.array([start]))[0, 8:-8, 8:-8]  # away from the wrapped edges
        assert np.median(flow[..., 0]) == pytest.approx(5, abs=0.3)
        assert np.median(flow[..., 1]) == pytest.approx(2, abs=0.3)


@pytest.mark.parametrize("shade", [1.0, 0.0])
def test_scene_flow_gives_the_actors_direction_whatever_its_colour(shade):
    """A square moving 3 pixels right a frame in the scene, under a panning camera: its flow points right, bright or
    dark (where a difference image changes sign with the colour), and the background, panning, has none."""
    path = [(t, 2 * t) for t in range(6)]  # the camera pans: the world moves 1 down and 2 right a frame in the picture
    actor = [(20 + t, 10 + 5 * t) for t in range(6)]  # in the picture: carried by the pan, plus 3 right of its own
    clip = panned_clip(path, actor=actor, shade=shade)
    clip = (clip - clip.mean(dim=(1, 3, 4), keepdim=True)) / clip.std(dim=(1, 3, 4), keepdim=True)  # as the model does
    flow = scene_flow(clip)[0]  # (T, 2, H, W)
    assert flow.shape == (6, 2, 48, 48) and torch.equal(flow[0], torch.zeros_like(flow[0]))
    for t in range(2, 6):
        y, x = actor[t - 1]
        at_actor = flow[t, :, y:y + 4, x:x + 4].mean(dim=(1, 2))  # where it was: it moved from there
        assert at_actor[0] > 1.0 and abs(float(at_actor[1])) < 0.5 * float(at_actor[0]), (t, at_actor)
        background = flow[t, :, 34:48, 0:14]  # the bottom-left corner, 8 or more pixels from the square's path
        assert background.abs().mean() < 0.1, background.abs().mean()


def square_over_panning_world(square: torch.Tensor, step: int, contrast: float, T: int, size: int = 48) -> tuple[
        torch.Tensor, list[tuple[int, int]]]:
    """(T, 3, size, size) in 0..1, and the square's (y, x) per frame: a grey textured world (mean 0.45, deviation
    `contrast`) panning 1 pixel right a frame, and a 6-pixel square of colour `square` moving `step` pixels right a
    frame (step - 1 in the scene)."""
    world = torch.from_numpy(world_texture(np.random.default_rng(0), size)).float().mean(-1) / 255  # (2S, 2S)
    world = 0.45 + contrast * (world - world.mean()) / world.std()
    frames, actor = [], [(20, 8 + step * t) for t in range(T)]
    for t in range(T):
        frame = torch.roll(world, t, dims=1)[:size, :size].expand(3, size, size).clone()
        y, x = actor[t]
        frame[:, y:y + 6, x:x + 6] = square[:, None, None]
        frames.append(frame)
    return torch.stack(frames), actor


def isoluminant_clip(T: int = 6) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """A reddish square as bright as the world's mean, moving 3 pixels a frame in the scene over a faint texture: in
    brightness it is a flat patch in a faint texture, in colour a sharp one."""
    clip, actor = square_over_panning_world(torch.tensor([0.65, 0.25, 0.45]), step=4, contrast=0.05, T=T)
    return motion.clip_normalised(255 * clip[None]), actor  # as clip_flow normalises a decoded clip


@pytest.mark.parametrize("colour", [True, False], ids=["colour", "brightness-only"])
def test_scene_flow_follows_a_thing_that_differs_from_its_background_in_hue_alone(colour, monkeypatch):
    """Farnebäck reads one channel; the flow of each opponent colour channel, taken where that channel changed, follows
    what brightness alone loses (shown by giving scene_flow the luminance channel only)."""
    if not colour:
        monkeypatch.setattr(motion, "OPPONENT", motion.OPPONENT[:1])
    clip, actor = isoluminant_clip()
    flow = scene_flow(clip)[0]  # (T, 2, H, W)
    found = torch.stack([flow[t, 0, y + 1:y + 5, x + 1:x + 5].mean() for t, (y, x) in enumerate(actor[:-1], start=1)])
    error = (found - 3).abs()  # it moves 3 pixels right a frame
    if colour:
        assert error.max() < 0.3, found
        assert flow[1:, :, 36:, :].abs().mean() < 0.1  # the panning world, away from the square, does not move
    else:
        assert error.max() > 0.8, found  # the test can fail: by brightness alone the square is lost on the way


def noisy_grey_clip(noise: float, seed: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """A bright square moving 2 pixels a frame in the scene over a grey world, and a camera's sensor noise of `noise`
    levels in 255, independent in each colour channel, rounded to whole levels like a decoded frame: the colour
    channels hold nothing but that noise."""
    clip, actor = square_over_panning_world(torch.tensor([0.7, 0.7, 0.7]), step=3, contrast=0.08, T=8)
    noisy = clip + torch.from_numpy(np.random.default_rng(seed).normal(0, noise / 255, clip.shape)).float()
    return motion.clip_normalised((noisy.clamp(0, 1) * 255).round()[None]), actor


@pytest.mark.parametrize("noise", [2.0, 6.0])
def test_sensor_noise_in_a_grey_clips_colour_channels_does_not_move_its_flow(noise, monkeypatch):
    """A nearly grey clip's colour channels hold only noise, and Farnebäck finds flow in noise: only change above a
    channel's own noise gives it a say, so the colour flow is as good as luminance's alone (before that floor, the
    square's error was 0.6 px against 0.03, and the still background's false flow twice luminance's)."""
    def errors(seed: int) -> tuple[float, float]:  # the square's flow error, the still background's flow
        clip, actor = noisy_grey_clip(noise, seed)
        flow = scene_flow(clip)[0]
        found = torch.stack([flow[t, 0, y + 1:y + 5, x + 1:x + 5].mean() for t, (y, x) in enumerate(actor[:-1], 1)])
        return (found - 2).abs().mean().item(), flow[1:, :, 36:, :].abs().mean().item()

    colour = np.mean([errors(seed) for seed in range(2)], axis=0)
    monkeypatch.setattr(motion, "OPPONENT", motion.OPPONENT[:1])
    luminance = np.mean([errors(seed) for seed in range(2)], axis=0)
    assert colour[0] < 0.15 and luminance[0] < 0.15, (colour, luminance)
    assert colour[1] < 1.25 * luminance[1] + 0.02, (colour, luminance)


def test_a_flow_frame_encoder_reads_two_channels_and_keeps_each_channels_peak():
    from tasks.video.backbones import SmallCNN, make_backbone

    net = SmallCNN(channels=(4, 8), grid=0, keypoints=True, feature_size=6, in_channels=2, peaks=True).eval()
    assert net.conv[0].in_channels == 2 and net.project[1].in_features == 4 * 8  # x, y, mean and max of each channel
    assert net(torch.zeros(3, 2, 16, 16)).shape == (3, 6)
    with pytest.raises(ValueError, match="small CNN"):
        make_backbone("resnet18", in_channels=2)


def test_stacked_motion_puts_each_step_after_the_ones_before_it():
    from tasks.video.motion import stacked

    motion = torch.arange(1.0, 5.0).view(1, 4, 1, 1, 1).expand(1, 4, 2, 3, 3)  # step t holds t + 1 in both channels
    views = stacked(motion, 3)  # (1, 4, 6, 3, 3)
    assert views.shape == (1, 4, 6, 3, 3)
    assert views[0, :, ::2, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]  # oldest first, zeros before
    assert torch.equal(stacked(motion, 1), motion)


def test_a_stacked_flow_stream_reads_its_steps_as_channels():
    from tasks.video.network import LRCN

    net = LRCN(num_classes=3, inputs="flow", channels=(4, 8), grid=0, feature_size=8, hidden_size=8, motion_steps=3)
    assert net.streams["flow"].conv[0].in_channels == 6
    clip = panned_clip([(0, t) for t in range(5)], size=32)
    assert net(clip).shape == (1, 3)


def turning_flow(step_degrees: float, T: int = 6, size: int = 3) -> torch.Tensor:
    """(1, T, 2, size, size): a uniform flow of speed 2 whose direction turns by step_degrees each frame."""
    angles = torch.deg2rad(torch.arange(T) * step_degrees)
    return (2 * torch.stack([angles.cos(), angles.sin()], dim=1)).view(1, T, 2, 1, 1).expand(1, T, 2, size, size)


def test_turning_tells_a_circles_direction_and_is_zero_for_a_straight_drift():
    from tasks.video.motion import with_turning

    one_way, other_way, straight = (with_turning(turning_flow(d)) for d in (30.0, -30.0, 0.0))
    assert one_way.shape == (1, 6, 4, 3, 3) and torch.equal(one_way[:, :, :2], turning_flow(30.0))
    assert torch.all(one_way[0, 1:, 2] > 1) and torch.all(other_way[0, 1:, 2] < -1)  # cross: sign of the turn
    torch.testing.assert_close(one_way[0, 1:, 2], -other_way[0, 1:, 2])
    assert torch.all(straight[0, :, 2] == 0) and torch.all(straight[0, 1:, 3] > 1)  # dot: going on
    assert torch.all(one_way[0, 0, 2:] == 0)  # nothing before the first step


def test_a_turning_flow_stream_reads_four_channels_a_step():
    from tasks.video.network import LRCN

    net = LRCN(num_classes=3, inputs="flow", channels=(4, 8), grid=0, feature_size=8, hidden_size=8, motion_steps=3,
               turning=True)
    assert net.streams["flow"].conv[0].in_channels == 12
    frames = torch.zeros(1, 5, 3, 32, 32)
    seen = {d: net.view("flow", frames, turning_flow(d, T=5, size=32)) for d in (30.0, -30.0)}
    assert seen[30.0].shape == (1, 5, 12, 32, 32)  # 3 steps of dx, dy, cross, dot, oldest first
    assert torch.all(seen[30.0][0, 1:, 10] > 1) and torch.all(seen[-30.0][0, 1:, 10] < -1)  # the newest step's turn
    assert net(frames, turning_flow(30.0, T=5, size=32)).shape == (1, 3)


# ---- the flow cache (tasks/video/flow_cache.py) ----

FLOW_DATA = dict(synth_classes=["MoveLeft", "MoveRight"], synth_clips_per_class=3, synth_frames=8, synth_size=32,
                 test_fraction=0.34, val_fraction=0.5, frames=4, cache_frames=8, height=32, width=32, crop=28,
                 batch_size=4, num_workers=0, prepare_workers=1, inputs="flow")


def flow_data(tmp_path, **kwargs):
    from tasks.video.data import VideoDataModule

    data = VideoDataModule(**{**FLOW_DATA, "cache_dir": str(tmp_path / "cache"), **kwargs})
    data.prepare_data()
    data.setup()
    return data


def drawn(dataset, i: int, seed: int):
    """Item i of a dataset under torch seed `seed`, and the view it was drawn with (the same draws again)."""
    from tasks.video.data import draw_view

    torch.manual_seed(seed)
    item = dataset[i]
    torch.manual_seed(seed)
    shape = np.load(dataset.files[i], mmap_mode="r").shape
    return item, draw_view(shape, dataset.frames, dataset.crop, train=dataset.train, flip=dataset.flip)


def test_cached_flow_is_the_whole_clips_flow_seen_through_the_frames_view(tmp_path):
    from tasks.video.data import take
    from tasks.video.flow_cache import flow_of

    data = flow_data(tmp_path)
    train = data.datasets["train"]
    for seed in range(3):  # random time offsets and crops
        (frames, _, _, flow), view = drawn(train, 0, seed)
        clip = np.load(train.files[0])
        assert torch.equal(frames, take(clip, view))
        expected = take(flow_of(clip), view, flow=True)  # computed now, in this process, from the frames
        assert flow.shape == (4, 2, 28, 28) and flow.dtype == torch.float16
        torch.testing.assert_close(flow.float(), expected.float(), rtol=0, atol=2e-2)
        assert expected.float().abs().amax() > 0.5  # the shape's motion is there
    batch = next(iter(data.val_dataloader()))
    assert batch.flow.shape == (*batch.frames.shape[:2], 2, 28, 28)


def test_a_model_classifies_a_raw_clip_as_it_did_its_cached_flow(tmp_path):
    from tasks.video.model import VideoModel

    data = flow_data(tmp_path)
    model = VideoModel(class_names=data.class_names, frames=4, cache_frames=8, height=32, width=32, crop=28,
                       inputs="flow", channels=(4, 8), grid=0, feature_size=8, hidden_size=8, flow_pool=2).eval()
    batch = next(iter(data.val_dataloader()))
    with torch.no_grad():
        cached = model(batch.frames, batch.flow).softmax(-1)
    raw = model.probabilities([np.load(f) for f in data.datasets["val"].files[:len(batch.labels)]])
    torch.testing.assert_close(raw, cached, rtol=0, atol=1e-3)


def test_a_mirrored_clips_flow_has_dx_negated(tmp_path):
    from tasks.video.data import View, take

    data = flow_data(tmp_path, flip=True)
    train = data.datasets["train"]
    right = train.labels.index(data.class_names.index("MoveRight"))
    for seed in range(40):  # the first draw that mirrors the clip
        (_, _, _, flow), view = drawn(train, right, seed)
        if view.mirror:
            break
    assert view.mirror
    # what the dataset served is the cached flow through the same view unmirrored, flipped, with dx negated: what
    # moves right in the clip moves left in its mirror image (which way this tiny clip's flow points is the
    # flow's accuracy, tested above, not the mirror's)
    unmirrored = take(np.load(train.flow_files[right]), view._replace(mirror=False), flow=True)
    assert torch.equal(flow[:, 0], -unmirrored[:, 0].flip(-1)) and torch.equal(flow[:, 1], unmirrored[:, 1].flip(-1))
    assert flow[:, 0].abs().max() > 0.5  # something moved: the check above compared more than zeros
    flow = np.random.default_rng(0).normal(size=(5, 6, 6, 2)).astype(np.float16)
    plain, mirrored = (take(flow, View([1, 2, 3], 1, 0, 4, mirror), flow=True) for mirror in (False, True))
    assert torch.equal(mirrored[:, 0], -plain[:, 0].flip(-1)) and torch.equal(mirrored[:, 1], plain[:, 1].flip(-1))


def test_a_corrupt_flow_entry_is_rebuilt_and_a_missing_one_named(tmp_path, monkeypatch):
    from tasks.common.errors import InputError
    from tasks.video import data as data_module
    from tasks.video.data import VideoDataModule

    data = flow_data(tmp_path)
    entry = data.datasets["train"].flow_files[0]
    good = np.load(entry)
    entry.write_bytes(entry.read_bytes()[:200])  # a truncated file, as a killed writer without atomic writes leaves
    with pytest.raises(InputError, match=f"flow cache entry {entry} is unreadable"):
        data.datasets["train"][0]
    np.save(entry, good[:, :5])  # a whole .npy, of the wrong shape
    with pytest.raises(InputError, match=f"flow cache entry {entry} holds float16"):
        data.datasets["train"][0]
    computed = []
    real = data_module.cache_flow
    monkeypatch.setattr(data_module, "cache_flow", lambda path, **kw: computed.append(path) or real(path, **kw))
    flow_data(tmp_path)  # prepare_data rebuilds what does not fit, and only that
    assert computed == [str(data.datasets["train"].files[0])]
    np.testing.assert_allclose(np.load(entry).astype(np.float32), good.astype(np.float32), atol=2e-2)
    entry.unlink()
    fresh = VideoDataModule(**{**FLOW_DATA, "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(InputError, match=r"1 clips are not in the flow cache .*call prepare_data\(\) before setup\(\)"):
        fresh.setup()
    rgb = flow_data(tmp_path, inputs="rgb")  # no flow wanted: none served
    assert rgb.datasets["train"].flow_files is None and next(iter(rgb.train_dataloader())).flow is None
