"""Video end to end on tiny synthetic clips: the LRCN learns, wandb gets the metrics and the confusion matrix,
a checkpoint alone classifies video files, bad files are reported; the network's heads and backbones."""
from collections import Counter

import pytest
import torch

from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.registry import get_task
from tasks.video.decode import decode_clip
from tasks.video.model import VideoModel
from tasks.video.network import LRCN, ResNet18
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


def test_heads_and_the_resnet_backbone(tmp_path):
    frames = torch.randn(2, 3, 3, 32, 32)  # (B, T, C, H, W)
    mean_head = LRCN(num_classes=5, channels=(8,), feature_size=16, hidden_size=16, head="mean").eval()
    assert torch.allclose(mean_head(frames).exp().sum(-1), torch.ones(2), atol=1e-5)  # the mean of T distributions
    resnet = ResNet18()
    assert resnet(torch.randn(2, 3, 64, 64)).shape == (2, 512)
    weights = {**resnet.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(weights, tmp_path / "resnet18.pth")  # what torchvision's resnet18 weights hold, fc included
    other = ResNet18()
    other.load_pretrained(tmp_path / "resnet18.pth")
    assert torch.equal(other.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises((ValueError, RuntimeError)):
        other.load_pretrained(tmp_path / "wrong.pth")
    model = VideoModel(class_names=["a", "b"], backbone="resnet18", backbone_weights=str(tmp_path / "resnet18.pth"),
                       frames=2, crop=32, height=32, width=32)
    model.setup("fit")
    assert torch.equal(model.net.cnn.layer1[0].conv1.weight, resnet.layer1[0].conv1.weight)
