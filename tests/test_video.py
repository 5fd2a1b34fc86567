"""Video end to end on tiny synthetic clips: the LRCN learns, wandb gets the metrics and the confusion matrix,
a checkpoint alone classifies video files, bad files are reported; the network's heads and backbones."""
import pytest
import torch

from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.registry import get_task
from tasks.video.decode import decode_clip
from tasks.video.model import VideoModel
from tasks.video.network import LRCN, ResNet18
from tasks.video.render import CLASSES
from wandb_records import history


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    return train(get_task("video"), [
        "--data.synth_clips_per_class=5", "--data.synth_frames=8", "--data.synth_size=32", "--data.test_fraction=0.2",
        "--data.val_fraction=0.25", "--data.frames=4", "--data.cache_frames=8", "--data.height=32", "--data.width=32",
        "--data.crop=28", "--data.batch_size=8", "--data.num_workers=0", "--data.prepare_workers=1",
        f"--data.cache_dir={root / 'cache'}",
        "--model.channels=[8, 16]", "--model.feature_size=32", "--model.hidden_size=32", "--model.dropout=0.0",
        "--model.lr=0.01",
        "--trainer.max_epochs=30", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--run.root={root / 'runs'}", "--run.name=tiny", "--run.wandb=offline",
    ])


def test_tiny_run_learns(trained):
    rows = history(trained.wandb_dir)
    losses = [float(r["train/loss"]) for r in rows if "train/loss" in r]
    assert losses[0] > 1.8  # chance over 8 classes is ln 8 = 2.08
    assert sum(losses[-6:]) / 6 < 0.5 * losses[0], (losses[0], losses[-6:])
    keys = {k for r in rows for k in r}
    assert {"val/acc", "val/top5", "val/loss", "test/acc", "test/top5", "val/confusion/_type",
            "test/confusion/_type"} <= keys, sorted(keys)
    assert sorted((trained.run_dir / "confusion").glob("val_epoch_*.png"))
    assert trained.metrics["val/top5"] >= trained.metrics["val/acc"]


def clips_of(trained):
    return sorted((trained.run_dir.parents[2] / "cache").rglob("*.mp4"))


def test_checkpoint_alone_classifies_video_files(trained, capsys):
    model = load_model(VideoModel, trained.best_checkpoint)
    assert model.class_names == list(CLASSES)
    h = model.hparams
    assert (h.frames, h.cache_frames, h.height, h.width, h.crop) == (4, 8, 32, 32, 28)
    clips = clips_of(trained)[:3]
    probabilities = model.probabilities([decode_clip(c, frames=8, height=32, width=32) for c in clips])
    assert probabilities.shape == (3, len(CLASSES)) and torch.allclose(probabilities.sum(-1), torch.ones(3))
    assert main(["classify", "video", "--ckpt", str(trained.best_checkpoint), "--top", "3", *map(str, clips)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * 4 and lines[0] == str(clips[0])
    name, value = lines[1].split(":")
    top = int(probabilities[0].argmax())
    assert name.strip() == CLASSES[top] and abs(float(value) - float(probabilities[0, top])) < 1e-3
    printed = [float(line.split(":")[1]) for line in lines[1:4]]
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
    assert checkpoint["hyper_parameters"]["class_names"] == list(CLASSES)


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
