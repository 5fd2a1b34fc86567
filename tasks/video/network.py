"""LRCN (Donahue et al. 2015): a CNN encodes every frame, the core LSTMEncoder runs over the frame features.

Shapes: B clips, T frames, C colour channels, H x W frame size, F frame feature size, K classes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from core import LSTMEncoder

BACKBONES = ("small", "resnet18")
HEADS = ("final", "mean")


class SmallCNN(nn.Module):
    """A small CNN trained from scratch: (N, C, H, W) -> (N, F).

    Blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling. The last map is not pooled away: like
    AlexNet's fc6 in the original LRCN, the feature keeps *where* things are, which motion needs. It is
    average-pooled to a grid x grid map and flattened, and with keypoints each channel also gives the
    expected x and y of its activation (a spatial soft-argmax, as in Levine et al. 2016): coordinates that
    move linearly with the object, so the LSTM reads motion as their differences from frame to frame.
    """

    def __init__(self, *, channels: Sequence[int] = (16, 32, 64), grid: int = 4, keypoints: bool = True,
                 feature_size: int = 128, dropout: float = 0.0):
        super().__init__()
        layers, previous = [], 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            previous = width
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.keypoints = keypoints
        size = previous * grid * grid + (3 * previous if keypoints else 0)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(size, feature_size), nn.ReLU(inplace=True))
        self.output_size = feature_size

    def forward(self, images: Tensor) -> Tensor:
        maps = self.conv(images)  # (N, C, h, w)
        features = [self.pool(maps).flatten(1)]  # (N, C * grid * grid)
        if self.keypoints:
            N, C, h, w = maps.shape
            weights = maps.flatten(2).softmax(dim=-1).view(N, C, h, w)  # where each channel fires
            ys = torch.linspace(-1, 1, h, device=maps.device)
            xs = torch.linspace(-1, 1, w, device=maps.device)
            features += [(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1), maps.mean((2, 3))]  # 3 x (N, C)
        return self.project(torch.cat(features, dim=1))  # (N, F)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with its parameter names."""

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or inputs != width:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 without its classifier: (N, 3, H, W) -> (N, 512), globally pooled.

    Parameter names are torchvision's, so its ImageNet weights (resnet18-f37072fd.pth, which torchvision
    keeps in ~/.cache/torch/hub/checkpoints/) load without torchvision installed.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, inputs = (64, 128, 256, 512), 64
        for n, width in enumerate(widths, 1):
            stride = 1 if n == 1 else 2
            setattr(self, f"layer{n}", nn.Sequential(BasicBlock(inputs, width, stride), BasicBlock(width, width)))
            inputs = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.output_size = 512
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)  # (N, 512)

    def load_pretrained(self, path: str | Path) -> None:
        """torchvision ResNet-18 weights (a state dict; its fc layer is ignored), read with weights_only=True."""
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.get("state_dict", state).items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} does not hold ResNet-18 weights: missing {missing[:3]}, unexpected {unexpected[:3]}")


class LRCN(nn.Module):
    """frames (B, T, C, H, W), normalised -> class logits (B, K).

    head "final" classifies the LSTM's last state; "mean" classifies every step and averages the T
    predicted distributions (returned as log-probabilities, which cross-entropy takes as logits).
    """

    def __init__(self, *, num_classes: int, backbone: Literal["small", "resnet18"] = "small",
                 channels: Sequence[int] = (16, 32, 64), grid: int = 4, keypoints: bool = True,
                 feature_size: int = 128, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.2,
                 head: Literal["final", "mean"] = "final"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"Unsupported backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
        if head not in HEADS:
            raise ValueError(f"Unsupported head {head!r}: choose one of {', '.join(HEADS)}")
        self.head = head
        self.cnn = (SmallCNN(channels=channels, grid=grid, keypoints=keypoints, feature_size=feature_size)
                    if backbone == "small" else ResNet18())
        self.dropout = nn.Dropout(dropout)
        self.encoder = LSTMEncoder(input_size=self.cnn.output_size, hidden_size=hidden_size, num_layers=num_layers,
                                   dropout=dropout)
        self.output = nn.Linear(self.encoder.output_size, num_classes)

    def forward(self, frames: Tensor) -> Tensor:
        B, T = frames.shape[:2]
        features = self.cnn(frames.flatten(0, 1)).view(B, T, -1)  # (B, T, F): every frame through the CNN at once
        encoded = self.encoder(features)  # dropout on its inputs is the encoder's
        if self.head == "final":
            return self.output(self.dropout(encoded.state[0][-1]))  # (B, K): the top layer's last hidden state
        log_probs = self.output(self.dropout(encoded.outputs)).log_softmax(dim=-1)  # (B, T, K)
        return torch.logsumexp(log_probs, dim=1) - math.log(T)  # (B, K): log of the mean distribution
