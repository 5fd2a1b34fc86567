"""Video end to end on tiny synthetic clips: the LRCN learns, wandb gets the metrics and the confusion matrix,
a checkpoint alone classifies video files, bad files are reported; the network's heads and backbones."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.errors import InputError
from tasks.common.resuming import check_fits
from tasks.common.training import train
from tasks.registry import get_task
from tasks.video.decode import decode_clip
from tasks.video.model import VideoModel
from tasks.video.data import Batch, VideoDataModule, VideoDataset
from tasks.video.network import LRCN
from tasks.video.render import render_clip
from tasks.video.render_cluttered import CLUTTERED_CLASSES, render_cluttered_clip
from wandb_records import history


# Mirror images of each other: no single frame tells them apart (render.py), only the motion does.
TWO_MOTIONS = ["MoveLeft", "MoveRight"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run that generalises to held-out clips. With 3 training clips per class the model memorised them and
    stayed at chance on test clips; with ~500 clips of two motions it generalises after 6 to 10 epochs (data seeds
    0-3), at a constant learning rate (the plateau schedule halved it while the model still guessed)."""
    root = tmp_path_factory.mktemp("video")
    return train(get_task("video"), [
        "--data.synth_clips_per_class=400", f"--data.synth_classes={TWO_MOTIONS}", "--data.synth_frames=8",
        "--data.synth_size=32", "--data.test_fraction=0.2", "--data.val_fraction=0.1", "--data.frames=4",
        "--data.cache_frames=8", "--data.height=32", "--data.width=32", "--data.crop=28", "--data.batch_size=16",
        "--data.num_workers=0", "--data.prepare_workers=1", f"--data.cache_dir={root / 'cache'}",
        "--model.channels=[8, 16]", "--model.feature_size=32", "--model.hidden_size=32", "--model.dropout=0.0",
        "--model.lr=0.003", "--model.lr_patience=100",
        "--trainer.max_epochs=16", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--run.root={root / 'runs'}", "--run.name=tiny", "--run.wandb=offline", RECORD,
    ])


def test_tiny_run_learns(trained):
    record, data = recorded(trained), trained.trainer.datamodule
    majority = Counter(c.label for c in data.clips["train"]).most_common(1)[0][0]
    test_labels = [c.label for c in data.clips["test"]]
    baselines = {"chance": 1 / len(data.class_names),
                 "majority class": sum(label == majority for label in test_labels) / len(test_labels)}
    # 160 held-out clips, never seen in training or model selection; measured 0.94
    assert_beats(record.test["test/acc"], baselines, margin=0.3, higher_is_better=True)
    losses = [epoch["train/loss"] for epoch in record.train]
    assert len(losses) == 16 and losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("inputs, members", [("diff", 1), ("stable-diff", 1), ("rgb+stable-diff", 1), ("flow", 1),
                                             ("flow", 2)])  # rgb+diff: as rgb+stable-diff
def test_tiny_run_learns_from_each_motion_input(inputs, members, trained, tmp_path):
    """The motion streams alone and fused with RGB, each on held-out clips of two mirror-image motions (the corpus
    and frame cache of the rgb run above, so only training is repeated); flow from the flow cache, which the CLI's
    link from --model.inputs has the data build; and flow with an ensemble of two members."""
    data = trained.trainer.datamodule.hparams
    result = train(get_task("video"), [
        f"--data.synth_clips_per_class={data.synth_clips_per_class}", f"--data.synth_classes={TWO_MOTIONS}",
        "--data.synth_frames=8", "--data.synth_size=32", "--data.frames=4", "--data.cache_frames=8",
        "--data.height=32", "--data.width=32", "--data.crop=28", "--data.batch_size=16", "--data.num_workers=0",
        "--data.prepare_workers=1", f"--data.cache_dir={data.cache_dir}", f"--model.inputs={inputs}",
        f"--model.members={members}",
        "--model.channels=[8, 16]", "--model.feature_size=32", "--model.hidden_size=32", "--model.dropout=0.0",
        "--model.lr=0.003", "--model.lr_patience=100", "--trainer.max_epochs=12",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.callbacks=[]", f"--run.root={tmp_path / 'runs'}",
        "--run.wandb=off", RECORD,
    ])
    test_labels = [c.label for c in result.trainer.datamodule.clips["test"]]
    majority = max(set(test_labels), key=test_labels.count)
    baselines = {"chance": 0.5, "majority class": test_labels.count(majority) / len(test_labels)}
    assert_beats(recorded(result).test["test/acc"], baselines, margin=0.3, higher_is_better=True)
    assert (result.trainer.datamodule.datasets["train"].flow_files is not None) == (inputs == "flow")


def test_wandb_offline_run_holds_the_metrics(trained):
    keys = {k for r in history(trained.wandb_dir) for k in r}
    assert {"train/loss", "val/acc", "val/top5", "val/loss", "test/acc", "test/top5", "val/confusion/_type",
            "test/confusion/_type"} <= keys, sorted(keys)
    assert sorted((trained.run_dir / "confusion").glob("val_epoch_*.png"))


def clips_of(trained):
    return sorted((trained.run_dir.parents[2] / "cache").rglob("*.mp4"))


def test_checkpoint_alone_classifies_video_files(trained, capsys):
    model = load_model(VideoModel, trained.best_checkpoint)
    assert model.class_names == TWO_MOTIONS
    h = model.hparams
    assert (h.frames, h.cache_frames, h.height, h.width, h.crop) == (4, 8, 32, 32, 28)
    clips = clips_of(trained)[:3]
    probabilities = model.probabilities([decode_clip(c, frames=8, height=32, width=32) for c in clips])
    assert probabilities.shape == (3, 2) and torch.allclose(probabilities.sum(-1), torch.ones(3))
    assert main(["classify", "video", "--ckpt", str(trained.best_checkpoint), "--top", "3", *map(str, clips)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * 3 and lines[0] == str(clips[0])  # top 3 of 2 classes: both
    name, value = lines[1].split(":")
    top = int(probabilities[0].argmax())
    assert name.strip() == TWO_MOTIONS[top] and abs(float(value) - float(probabilities[0, top])) < 1e-3
    printed = [float(line.split(":")[1]) for line in lines[1:3]]
    assert printed == sorted(printed, reverse=True)


def test_classify_reports_bad_files_and_goes_on(trained, tmp_path, capsys):
    good = clips_of(trained)[0]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(good.read_bytes()[:200])
    assert main(["classify", "video", "--ckpt", str(trained.best_checkpoint), str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: cannot read video" in captured.err and str(good) in captured.out
    assert main(["classify", "video", "--ckpt", str(trained.best_checkpoint), str(tmp_path / "none.mp4")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["classify", "video", "--ckpt", str(trained.best_checkpoint), str(bad)]) == 2
    assert "no file could be read" in capsys.readouterr().err


def test_checkpoint_is_weights_only(trained):
    checkpoint = torch.load(trained.best_checkpoint, weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == TWO_MOTIONS


def test_the_mean_head_averages_distributions():
    frames = torch.randn(2, 3, 3, 32, 32)  # (B, T, C, H, W)
    mean_head = LRCN(num_classes=5, channels=(8,), feature_size=16, hidden_size=16, head="mean").eval()
    assert torch.allclose(mean_head(frames).exp().sum(-1), torch.ones(2), atol=1e-5)  # the mean of T distributions


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_backbones_load_local_weights_and_freeze(name, tmp_path):
    import torchvision

    reference = getattr(torchvision.models, name)(weights=None)
    torch.save(reference.state_dict(), tmp_path / "weights.pth")  # what torchvision's files hold, classifier included
    model = VideoModel(class_names=["a", "b"], backbone=name, backbone_weights=str(tmp_path / "weights.pth"),
                       inputs="rgb+diff", freeze_backbone=True, frames=2, crop=32, height=32, width=32)
    model.setup("fit")
    for stream in model.net.members[0].streams.values():  # both streams start from the file
        mine = dict(stream.model.named_parameters())
        assert all(torch.equal(mine[k], v) for k, v in reference.named_parameters() if k in mine)
        assert not any(p.requires_grad for p in stream.parameters())
    model.train()
    frozen = model.net.members[0].streams["rgb"].model
    assert not any(m.training for m in frozen.modules())  # frozen batch norms keep statistics
    assert model(torch.randint(0, 255, (2, 2, 3, 32, 32), dtype=torch.uint8)).shape == (2, 2)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    wrong = VideoModel(class_names=["a", "b"], backbone=name, backbone_weights=str(tmp_path / "wrong.pth"))
    with pytest.raises(InputError, match="wrong.pth: not"):
        wrong.setup("fit")


def test_imagenet_weights_are_looked_up_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model = VideoModel(class_names=["a", "b"], backbone="resnet18", backbone_weights="imagenet")
    with pytest.raises(InputError, match=r"hub/checkpoints/resnet18-f37072fd.pth not found.*https://download"):
        model.setup("fit")
    with pytest.raises(InputError, match="freeze_backbone needs"):
        VideoModel(class_names=["a", "b"], backbone="resnet18", freeze_backbone=True)


def test_an_ensemble_predicts_its_members_mean_probability_and_each_member_learns_from_its_own_loss():
    torch.manual_seed(0)
    model = VideoModel(class_names=["a", "b", "c"], channels=[8], feature_size=16, hidden_size=16, dropout=0.0,
                       members=3)
    frames = torch.randint(0, 255, (4, 3, 3, 20, 20), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    members = model.member_logits(frames)
    assert members.shape == (3, 4, 3)
    assert not torch.allclose(members[0], members[1], atol=1e-3)  # each from its own initialisation
    assert torch.allclose(model(frames).exp(), members.softmax(-1).mean(0), atol=1e-6)
    model.training_step(Batch(frames, labels, torch.arange(4)), 0).backward()
    together = [p.grad.clone() for p in model.net.members[0].parameters()]
    model.zero_grad()
    (torch.nn.functional.cross_entropy(model.member_logits(frames)[0], labels) / 3).backward()  # member 0's loss alone
    alone = [p.grad for p in model.net.members[0].parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(together, alone))
    with pytest.raises(InputError, match="members 0: must be at least 1"):
        VideoModel(class_names=["a", "b"], members=0)


@pytest.mark.parametrize("old_prefix", ["net.cnn.", "net.streams.rgb."])  # before the streams; before ensembles
def test_older_checkpoints_load_as_the_only_member(old_prefix):
    model = VideoModel(class_names=["a", "b"], channels=[8], feature_size=16, hidden_size=16)
    old = {k.replace("net.members.0.streams.rgb.", old_prefix).replace("net.members.0.", "net."):
           torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    checkpoint = {"state_dict": old}
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])  # strict: every key found
    assert torch.equal(model.net.members[0].streams.rgb.conv[0].weight, old[old_prefix + "conv.0.weight"])
    check_fits(Path("old.ckpt"), {"state_dict": old}, model)  # so --run.resume takes it too


@pytest.mark.parametrize("motion", ["diff", "stable-diff", "flow"])
@pytest.mark.parametrize("style", ["plain", "cluttered"])
def test_the_motion_stream_sees_motion_not_the_first_frame(style, motion):
    """Two clips of one seed share their first frame and differ in motion: the rgb stream's first-frame feature is
    the same for both, the difference stream's later features are not."""
    render, (one, other) = ((render_clip, ("MoveLeft", "MoveUp")) if style == "plain"
                            else (render_cluttered_clip, ("SwingSideways", "CircleClockwise")))
    clips = torch.stack([torch.from_numpy(render(m, (3, 1, 4), frames=8, size=32)) for m in (one, other)])
    assert torch.equal(clips[0, 0], clips[1, 0]) and not torch.equal(clips[0, 4], clips[1, 4])
    net = LRCN(num_classes=2, inputs=f"rgb+{motion}", channels=(8, 16), feature_size=16, hidden_size=16).eval()
    with torch.no_grad():
        features = net.frame_features(clips.permute(0, 1, 4, 2, 3).float() / 255)
    rgb, diff = features["rgb"], features[motion]
    torch.testing.assert_close(rgb[0, 0], rgb[1, 0])
    torch.testing.assert_close(diff[0, 0], diff[1, 0])  # nothing has moved yet
    assert (diff[0, 1:] - diff[1, 1:]).abs().max() > 1e-3


def test_colour_jitter_is_the_same_in_every_frame(tmp_path):
    clip = np.full((4, 8, 8, 3), 100, dtype=np.uint8)
    np.save(tmp_path / "clip.npy", clip)
    dataset = VideoDataset([tmp_path / "clip.npy"], [0], frames=4, crop=8, train=True, flip=False, colour_jitter=0.3)
    views = [dataset[0][0] for _ in range(5)]
    for view in views:
        assert all(torch.equal(view[0], frame) for frame in view)  # a still clip stays still: motion untouched
    assert len({tuple(v[0, :, 0, 0].tolist()) for v in views}) > 1  # and the colours change between accesses


def test_the_cluttered_style_builds_its_own_corpus(tmp_path):
    data = VideoDataModule(synth_style="cluttered", synth_clips_per_class=4, synth_frames=6, synth_size=32, frames=3,
                           cache_frames=6, height=32, width=32, crop=28, test_fraction=0.25, val_fraction=0.0,
                           prepare_workers=1, num_workers=0, cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup("fit")
    assert data.class_names == list(CLUTTERED_CLASSES)
    assert {len(data.clips["train"]), len(data.clips["test"])} == {18, 6}
    assert next(tmp_path.glob("synth-cluttered-*"))
    with pytest.raises(InputError, match="MoveLeft.*synth_style cluttered"):
        VideoDataModule(synth_style="cluttered", synth_classes=["MoveLeft", "Hop"])
    with pytest.raises(InputError, match="synth_style 'tilted'"):
        VideoDataModule(synth_style="tilted")


def test_cache_fps_keeps_frames_at_that_rate_from_the_middle(tmp_path):
    from tasks.video.render import write_video

    ramp = np.stack([np.full((16, 16, 3), 10 * i, dtype=np.uint8) for i in range(24)])  # frame i is 10 * i bright
    write_video(ramp, tmp_path / "ramp.mp4", fps=12)

    def kept(**options) -> list[int]:
        clip = decode_clip(tmp_path / "ramp.mp4", frames=6, height=16, width=16, **options)
        return [round(float(frame.mean()) / 10) for frame in clip]

    assert kept(fps=6) == [6, 8, 10, 12, 14, 16]  # every second frame of a 12 fps file, a centred run
    assert kept(fps=12) == [9, 10, 11, 12, 13, 14]  # the file's own rate: consecutive frames
    assert kept() == [2, 6, 10, 14, 18, 22]  # without a rate: spread over the whole clip
