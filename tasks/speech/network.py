"""The acoustic model: 4x subsampling in time, the core LSTMEncoder, and a CTC output layer."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from core import LSTMEncoder

SUBSAMPLINGS = ("stack", "conv")
STACK = 4  # frames concatenated into one by FrameStacking


def subsampled_length(frames, kind: str):
    """Frames (an int or a tensor of lengths) left after subsampling `kind`: what CTC has to place the labels in.

    Below 1 for clips too short to give a frame (conv: under 7, which its kernels cannot even take).
    """
    return frames // STACK if kind == "stack" else ((frames - 1) // 2 - 1) // 2


class FrameStacking(nn.Module):
    """Concatenate every 4 frames into one (LAS-style stacking): the cheapest 4x subsampling on CPU.

    features (B, T, F), lengths (B,) -> (B, T // 4, out_size), lengths // 4.
    """

    def __init__(self, n_mels: int, out_size: int):
        super().__init__()
        self.proj = nn.Linear(n_mels * STACK, out_size)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T, F = x.shape
        T4 = subsampled_length(T, "stack")
        x = x[:, : T4 * STACK].reshape(B, T4, F * STACK)  # (B, T/4, 4F)
        return torch.relu(self.proj(x)), subsampled_length(lengths, "stack")


class ConvSubsampling(nn.Module):
    """Two 3x3 convolutions with stride 2 over (time, frequency), as ESPnet's Conv2dSubsampling.

    features (B, T, F), lengths (B,) -> (B, ((T-1)//2-1)//2, out_size), lengths likewise.
    """

    def __init__(self, n_mels: int, out_size: int, channels: int = 32):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU())
        freq = ((n_mels - 1) // 2 - 1) // 2
        self.proj = nn.Linear(channels * freq, out_size)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(x[:, None])  # (B, C, T', F')
        B, C, T, F = x.shape
        x = self.proj(x.transpose(1, 2).reshape(B, T, C * F))  # (B, T', out)
        return x, subsampled_length(lengths, "conv")


class CTCAcousticModel(nn.Module):
    """features (B, T, n_mels) -> log-probabilities (B, T', vocab) over labels plus the CTC blank (id 0)."""

    def __init__(self, *, n_mels: int, vocab_size: int, hidden_size: int = 256, num_layers: int = 3,
                 bidirectional: bool = True, dropout: float = 0.2, subsampling: Literal["stack", "conv"] = "stack"):
        super().__init__()
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(f"Unsupported subsampling {subsampling!r}: choose one of {', '.join(SUBSAMPLINGS)}")
        frontend = FrameStacking if subsampling == "stack" else ConvSubsampling
        self.subsample = frontend(n_mels, hidden_size)
        per_direction = hidden_size // 2 if bidirectional else hidden_size
        self.encoder = LSTMEncoder(input_size=hidden_size, hidden_size=per_direction, num_layers=num_layers,
                                   bidirectional=bidirectional, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.encoder.output_size, vocab_size)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = self.subsample(features, lengths)  # (B, T', H)
        lengths = lengths.clamp(min=1)
        out = self.encoder(x, lengths, need_state=False).outputs  # (B, T', D*H'): no packing, faster
        return self.output(self.dropout(out)).log_softmax(dim=-1), lengths


def greedy_ctc(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best label per frame, repeats merged, blanks removed. log_probs (B, T, V) -> label ids per utterance."""
    best = log_probs.argmax(dim=-1).tolist()  # (B, T)
    results = []
    for row, length in zip(best, lengths.tolist()):
        labels, previous = [], None
        for label in row[:length]:
            if label != previous and label != blank:
                labels.append(label)
            previous = label
        results.append(labels)
    return results
