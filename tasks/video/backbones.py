"""Frame encoders: (N, 3, H, W) -> (N, F). A small CNN trained from scratch, or torchvision's ImageNet models.

Pretrained weights come from a local file, never from the network: `backbone_weights=imagenet` looks for the
file torchvision itself would download, in torch's hub cache (~/.cache/torch/hub/checkpoints/), and a
missing file is a one-line error saying where to put it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from tasks.common.errors import InputError

BACKBONES = ("small", "resnet18", "mobilenet_v3_small")


class SmallCNN(nn.Module):
    """A small CNN trained from scratch: (N, C, H, W) -> (N, F).

    Blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling. The last map is not pooled away: like
    AlexNet's fc6 in the original LRCN, the feature keeps *where* things are, which motion needs. It is
    average-pooled to a grid x grid map and flattened, and with keypoints each channel also gives the
    expected x and y of its activation (a spatial soft-argmax, as in Levine et al. 2016): coordinates that
    move linearly with the object, so the LSTM reads motion as their differences from frame to frame.
    in_channels: 3 for images, 2 for a flow field. peaks: each channel's maximum too (global max pooling):
    whether a pattern occurs anywhere, however small, wherever it is (a mean dilutes a small actor's motion).
    """

    def __init__(self, *, channels: Sequence[int] = (16, 32, 64), grid: int = 4, keypoints: bool = True,
                 feature_size: int = 128, dropout: float = 0.0, in_channels: int = 3, peaks: bool = False):
        super().__init__()
        layers, previous = [], in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            previous = width
        if grid < 0 or (grid == 0 and not keypoints):
            raise ValueError(f"grid must be >= 0, and 0 only with keypoints (nothing would be left), got grid={grid}")
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid) if grid else None  # grid 0: keypoints alone, no appearance map
        self.keypoints, self.peaks = keypoints, peaks
        size = previous * grid * grid + (3 * previous if keypoints else 0) + (previous if peaks else 0)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(size, feature_size), nn.ReLU(inplace=True))
        self.output_size = feature_size

    def forward(self, images: Tensor) -> Tensor:
        maps = self.conv(images)  # (N, C, h, w)
        features = [self.pool(maps).flatten(1)] if self.pool is not None else []  # (N, C * grid * grid)
        if self.keypoints:
            N, C, h, w = maps.shape
            weights = maps.flatten(2).softmax(dim=-1).view(N, C, h, w)  # where each channel fires
            ys = torch.linspace(-1, 1, h, device=maps.device)
            xs = torch.linspace(-1, 1, w, device=maps.device)
            features += [(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1), maps.mean((2, 3))]  # 3 x (N, C)
        if self.peaks:
            features.append(maps.amax(dim=(2, 3)))  # (N, C)
        return self.project(torch.cat(features, dim=1))  # (N, F)


class TorchvisionBackbone(nn.Module):
    """A torchvision ImageNet classifier without its classification layers: (N, 3, H, W) -> (N, F), pooled.

    frozen: its weights stay as loaded and its batch norms keep their ImageNet statistics (eval mode always);
    else it is fine-tuned with the rest.
    """

    def __init__(self, name: str, frozen: bool = False):
        super().__init__()
        from torchvision import models

        self.name, self.frozen = name, frozen
        self.model = getattr(models, name)(weights=None)
        if name == "resnet18":
            self.output_size, self.model.fc = self.model.fc.in_features, nn.Identity()
        else:  # mobilenet_v3_small: features -> avgpool -> classifier
            self.output_size, self.model.classifier = self.model.classifier[0].in_features, nn.Identity()
        if frozen:
            self.model.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def train(self, mode: bool = True) -> "TorchvisionBackbone":
        super().train(mode)
        if self.frozen:
            self.model.eval()  # batch norm keeps the statistics it was trained with
        return self

    def load_weights(self, path: str | Path) -> None:
        """A torchvision state dict of this model (its classifier is ignored), read with weights_only=True."""
        try:
            state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
        except Exception as error:
            raise InputError(f"backbone weights {path}: not a readable state dict ({error})") from None
        state = state.get("state_dict", state)
        classifier = ("fc.",) if self.name == "resnet18" else ("classifier.",)
        state = {k: v for k, v in state.items() if not k.startswith(classifier)}
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes that do not fit
            raise InputError(f"backbone weights {path}: not {self.name} weights ({str(error).splitlines()[-1].strip()})") from None
        if missing or unexpected:
            raise InputError(f"backbone weights {path}: not {self.name} weights (missing {missing[:2]}, "
                             f"unexpected {unexpected[:2]})")


def imagenet_weights_file(name: str) -> Path:
    """Where torchvision keeps `name`'s ImageNet weights once downloaded: torch's hub cache."""
    from torchvision.models import get_model_weights

    url = get_model_weights(name).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def weights_path(name: str, weights: Optional[str]) -> Optional[Path]:
    """The file `backbone_weights` names for backbone `name` (None: random init), checked to exist."""
    if not weights:
        return None
    if name == "small":
        raise InputError("--model.backbone_weights is for the torchvision backbones (resnet18, mobilenet_v3_small); "
                         "the small CNN trains from scratch")
    if weights == "imagenet":
        path = imagenet_weights_file(name)
        if not path.is_file():
            from torchvision.models import get_model_weights

            raise InputError(f"{name} ImageNet weights: {path} not found (this machine downloads nothing): fetch "
                             f"{get_model_weights(name).IMAGENET1K_V1.url} there, or pass --model.backbone_weights=FILE")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(f"backbone weights {weights}: no such file (a torchvision {name} state dict; 'imagenet' for "
                         "the one in torch's hub cache; or null to train from scratch)")
    return path


def make_backbone(name: str, *, frozen: bool = False, channels: Sequence[int] = (16, 32, 64), grid: int = 4,
                  keypoints: bool = True, feature_size: int = 128, in_channels: int = 3, peaks: bool = False) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"Unsupported backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if name == "small":
        if frozen:
            raise ValueError("--model.freeze_backbone needs pretrained weights: the small CNN trains from scratch")
        return SmallCNN(channels=channels, grid=grid, keypoints=keypoints, feature_size=feature_size,
                        in_channels=in_channels, peaks=peaks)
    if in_channels != 3:
        raise ValueError(f"{name} reads images (3 channels), not {in_channels}: use the small CNN for flow")
    return TorchvisionBackbone(name, frozen)
