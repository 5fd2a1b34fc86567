"""Video activity recognition: uint8 clips -> normalised -> LRCN -> class scores; top-1/top-5 accuracy."""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from tasks.common.errors import InputError
from tasks.common.optim import adamw_with_budget_decay, adamw_with_plateau, check_optimiser_settings
from tasks.video.backbones import weights_path
from tasks.video.data import eval_view
from tasks.video.flow_cache import flow_of
from tasks.video.motion import clip_flow, clip_normalised
from tasks.video.network import Ensemble

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class VideoModel(L.LightningModule):
    """LRCN activity recognizer; a checkpoint carries the class names and how frames were prepared, so a
    checkpoint alone classifies a video file.

    Args:
        class_names: linked from the data (sorted class folder names).
        frames, cache_frames, cache_fps, height, width, crop: linked from the data: how a clip becomes the
            model's input (decoded to cache_frames frames of height x width, spread over the clip or at
            cache_fps, frames of them sampled, a crop x crop centre).
        normalize: "clip" standardises each colour channel of a clip by its own mean and deviation over all its
            frames and pixels (as speech normalises each utterance): the scene's colours and brightness no longer
            matter, and the synthetic corpus draws them at random. "dataset" uses the fixed mean and std.
        mean, std: per-channel RGB (0..1) statistics for normalize "dataset" (ImageNet's, which pretrained
            backbones expect).
        inputs: what the frame encoders read: "rgb", "diff" (frame differences: motion), "stable-diff" (frame
            differences after undoing the camera's pan: motion in the scene), "flow" (dense optical flow after undoing
            the pan, where the picture changed: the direction of motion, not the colours; the small backbone only) or
            "rgb+diff" / "rgb+stable-diff" / "rgb+flow" (two streams, their features side by side before the LSTM).
        backbone: "small" (a CNN trained from scratch), "resnet18" or "mobilenet_v3_small" (torchvision's).
        backbone_weights: for a torchvision backbone, loaded when training starts: "imagenet" (the file torchvision
            downloads, looked up in torch's hub cache, never fetched) or a state dict file; none: random init.
        freeze_backbone: keep the pretrained backbone as loaded (only the LSTM and the output learn).
        channels: the small CNN's convolution widths, one block (and one 2x pooling) each.
        grid: the small CNN keeps a grid x grid map of positions in its frame feature; 0 keeps only the keypoints
            (where each channel fires, not what the frame looks like).
        keypoints: the small CNN also gives each channel's expected x and y (spatial soft-argmax) and mean.
        feature_size: the small CNN's frame feature size (resnet18: 512).
        hidden_size, num_layers, dropout: the LSTM over frame features.
        head: "final" classifies the LSTM's last state, "mean" averages per-frame predictions (as LRCN did).
        motion_steps: a motion stream's encoder sees this many consecutive motion fields at each step, as channels
            (early temporal fusion: a piece of trajectory; 1 = each step alone, as before).
        flow_pool: the flow stream's encoder reads flow averaged over flow_pool x flow_pool pixels (2: a quarter of
            its cost). Flow itself comes from the flow cache in training and evaluation (the data computes it once
            per clip: the motion at each sampled frame from the cached frame before it, over the whole frame, then
            cropped like the frames), and is computed the same way from a raw clip in `probabilities`; it is always
            computed from clip-normalised frames, whatever `normalize` (scene_flow's thresholds are in those units).
        turning: the flow stream also reads how the flow at each pixel turned since the step before (the cross and
            dot products of consecutive flow fields): the direction a circling actor turns, which one convolution
            over flow cannot compute.
        members: that many LRCNs, each from its own initialisation, trained side by side; the prediction is their
            mean probability (a deep ensemble, network.Ensemble): better calibrated on a small set, members times the
            compute.
        lr, weight_decay: AdamW.
        lr_schedule: "budget" (warm up over warmup_steps, then decay linearly to zero when max_time or the step
            budget runs out: the time budget decides the end) or "plateau" (halve after lr_patience stalled
            validations).
        label_smoothing: cross-entropy label smoothing.
    """

    # the best checkpoint has the lowest validation loss: on a small validation set accuracy moves in steps of one clip
    # and ties, and its first peak is often an early, lucky epoch (user-style cluttered set, 36 validation clips: the
    # val/acc pick 87.2% test, the end of the same run 91.0%)
    monitor, monitor_mode = "val/loss", "min"

    def __init__(
        self,
        *,
        class_names: list[str],
        frames: int = 8,
        cache_frames: int = 16,
        cache_fps: Optional[float] = None,
        height: int = 48,
        width: int = 48,
        crop: int = 44,
        normalize: Literal["clip", "dataset"] = "clip",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        inputs: Literal["rgb", "diff", "stable-diff", "flow", "rgb+diff", "rgb+stable-diff", "rgb+flow"] = "rgb",
        backbone: Literal["small", "resnet18", "mobilenet_v3_small"] = "small",
        backbone_weights: Optional[str] = None,
        freeze_backbone: bool = False,
        channels: Sequence[int] = (16, 32, 64),
        grid: int = 4,
        keypoints: bool = True,
        feature_size: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
        head: Literal["final", "mean"] = "final",
        motion_steps: int = 1,
        flow_pool: int = 1,
        turning: bool = False,
        members: int = 1,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        lr_schedule: Literal["budget", "plateau"] = "plateau",
        warmup_steps: int = 50,
        lr_patience: int = 2,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        if normalize not in ("clip", "dataset"):
            raise ValueError(f"Unsupported normalize {normalize!r}: choose clip or dataset")
        if lr_schedule not in ("budget", "plateau"):
            raise ValueError(f"Unsupported lr_schedule {lr_schedule!r}: choose budget or plateau")
        if freeze_backbone and not backbone_weights:
            raise InputError("--model.freeze_backbone needs --model.backbone_weights (imagenet or a file): a frozen "
                             "random backbone learns nothing")
        if members < 1:
            raise InputError(f"--model.members {members}: must be at least 1 (the networks averaged)")
        K = len(class_names)
        self.net = Ensemble(members, num_classes=K, backbone=backbone, freeze_backbone=freeze_backbone,
                            inputs=inputs, channels=channels, grid=grid, keypoints=keypoints,
                            feature_size=feature_size, hidden_size=hidden_size, num_layers=num_layers,
                            dropout=dropout, head=head, motion_steps=motion_steps, flow_pool=flow_pool,
                            turning=turning)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        top1, top5 = (dict(num_classes=K, top_k=k, average="micro") for k in (1, min(5, K)))
        self.val_acc, self.val_top5 = MulticlassAccuracy(**top1), MulticlassAccuracy(**top5)
        self.test_acc, self.test_top5 = MulticlassAccuracy(**top1), MulticlassAccuracy(**top5)
        self.val_confusion, self.test_confusion = MulticlassConfusionMatrix(K), MulticlassConfusionMatrix(K)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    def setup(self, stage: str) -> None:
        if stage != "fit":  # (a resumed run's checkpoint replaces the weights afterwards)
            return
        path = weights_path(self.hparams.backbone, self.hparams.backbone_weights)
        if path is not None:  # every stream of every member starts from them, the difference stream too
            for member in self.net.members:
                for stream in member.streams.values():
                    stream.load_weights(path)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints from before the streams (one CNN at net.cnn, the hand-copied ResNet-18) load as the rgb stream;
        checkpoints from before ensembles (one LRCN at net) as the only member."""
        state = checkpoint["state_dict"]
        if any(k.startswith("net.cnn.") for k in state):
            resnet = self.hparams.backbone == "resnet18"
            prefix = "net.streams.rgb.model." if resnet else "net.streams.rgb."
            state = {(prefix + k[len("net.cnn."):] if k.startswith("net.cnn.") else k): v for k, v in state.items()}
        if not any(k.startswith("net.members.") for k in state):
            state = {("net.members.0." + k[len("net."):] if k.startswith("net.") else k): v for k, v in state.items()}
        checkpoint["state_dict"] = state

    def forward(self, frames: Tensor, flow: Optional[Tensor] = None) -> Tensor:
        """frames (B, T, C, h, w) uint8 RGB, flow (B, T, 2, h, w) from the flow cache or None -> log-probabilities
        (B, K), the members' mean (member_logits)."""
        return Ensemble.combined(self.member_logits(frames, flow))

    def member_logits(self, frames: Tensor, flow: Optional[Tensor] = None) -> Tensor:
        """frames (B, T, C, h, w) uint8 RGB, flow (B, T, 2, h, w) from the flow cache or None -> each member's
        logits (M, B, K).

        Without flow, a flow stream's is computed here from the frames given (a view: its flow differs a little
        from the cache's, which saw whole frames; `probabilities` computes the cache's)."""
        if self.hparams.normalize == "clip":  # each clip's own colour statistics, over its frames and pixels
            x = clip_normalised(frames)  # (B, T, C, h, w)
        else:
            x = (frames.float() / 255 - self.mean) / self.std
        if flow is None and self.net.reads_flow:
            flow = clip_flow(frames)
        return self.net(x, flow)

    def training_step(self, batch, batch_idx):
        members = self.member_logits(batch.frames, batch.flow)  # (M, B, K)
        M, B = members.shape[:2]
        # each member learns on its own (its mean loss), not the average: the members stay different
        loss = F.cross_entropy(members.flatten(0, 1), batch.labels.repeat(M),
                               label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log("train/acc", (Ensemble.combined(members).argmax(-1) == batch.labels).float().mean(), batch_size=B)
        return loss

    def _evaluate(self, batch, split: str, acc: MulticlassAccuracy, top5: MulticlassAccuracy,
                  confusion: MulticlassConfusionMatrix) -> None:
        logits = self(batch.frames, batch.flow)
        loss = F.cross_entropy(logits, batch.labels)
        acc.update(logits, batch.labels)
        top5.update(logits, batch.labels)
        confusion.update(logits.argmax(-1), batch.labels)
        mean_loss = getattr(self, f"{split}_loss")  # a metric: synced exactly across processes (see SpeechModel)
        mean_loss.update(loss, len(batch.labels))
        self.log(f"{split}/loss", mean_loss)
        self.log(f"{split}/acc", acc, prog_bar=split == "val")
        self.log(f"{split}/top5", top5)

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc, self.val_top5, self.val_confusion)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_acc, self.test_top5, self.test_confusion)

    def configure_optimizers(self):
        h = self.hparams
        if h.lr_schedule == "budget":
            return adamw_with_budget_decay(self, h.lr, h.weight_decay, h.warmup_steps)
        return adamw_with_plateau(self, h.lr, h.weight_decay, h.lr_patience)

    @torch.no_grad()
    def probabilities(self, clips: list[np.ndarray]) -> Tensor:
        """Decoded clips, each (N, height, width, 3) uint8 as the frame cache holds them -> (len(clips), K)."""
        self.eval()
        h = self.hparams
        views = torch.stack([eval_view(clip, h.frames, h.crop) for clip in clips])
        flow = None
        if self.net.reads_flow:  # as the flow cache has it: the whole clip's, then the same view
            flow = torch.stack([eval_view(flow_of(clip), h.frames, h.crop) for clip in clips]).to(self.device)
        return self(views.to(self.device), flow).softmax(dim=-1).cpu()
