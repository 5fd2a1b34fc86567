"""LRCN (Donahue et al. 2015): a CNN encodes every frame (and, for motion, every frame difference), the core
LSTMEncoder runs over the frame features.

Shapes: B clips, T frames, C colour channels, H x W frame size, F frame feature size, K classes.
"""
from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core import LSTMEncoder
from tasks.video.backbones import make_backbone
from tasks.video.motion import frame_differences, scene_flow, stabilised_differences, stacked, with_turning

INPUTS = ("rgb", "diff", "stable-diff", "flow", "rgb+diff", "rgb+stable-diff", "rgb+flow")
HEADS = ("final", "mean")
MOTION = {"diff": frame_differences, "stable-diff": stabilised_differences, "flow": scene_flow}


class LRCN(nn.Module):
    """frames (B, T, C, H, W), normalised -> class logits (B, K).

    inputs: which streams a frame encoder reads, each with its own: "rgb" (the frames), "diff" (frame
    differences), "stable-diff" (differences after undoing the camera's pan, tasks/video/motion.py), "flow"
    (dense scene flow after the pan, 2 channels: the direction of motion, appearance-free; its CNN also max-pools,
    so a small actor's motion is not averaged away) or rgb with one of them, their features side by side before
    the LSTM. head "final" classifies the LSTM's last state; "mean" classifies every step and averages the T
    predicted distributions (returned as log-probabilities, which cross-entropy takes as logits). motion_steps:
    each step's motion encoder sees that many consecutive motion fields as channels (early fusion: a piece of
    trajectory, motion.stacked). flow_pool: the flow stream's encoder reads flow averaged over flow_pool x
    flow_pool pixels (2: a quarter of the convolutions' cost, and less of the flow's pixel noise; flow is
    smooth where an actor moves, so little is lost). turning: the flow stream also reads how each pixel's flow
    turned since the step before (motion.with_turning: 2 more channels), what tells a circle's direction. Flow can
    be given (the flow cache's, tasks/video/flow_cache.py): else it is computed from the frames here.
    """

    def __init__(self, *, num_classes: int, backbone: str = "small", freeze_backbone: bool = False,
                 inputs: Literal["rgb", "diff", "stable-diff", "flow", "rgb+diff", "rgb+stable-diff", "rgb+flow"] = "rgb",
                 channels: Sequence[int] = (16, 32, 64),
                 grid: int = 4, keypoints: bool = True, feature_size: int = 128, hidden_size: int = 128,
                 num_layers: int = 1, dropout: float = 0.2, head: Literal["final", "mean"] = "final",
                 motion_steps: int = 1, flow_pool: int = 1, turning: bool = False):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"Unsupported head {head!r}: choose one of {', '.join(HEADS)}")
        if inputs not in INPUTS:
            raise ValueError(f"Unsupported inputs {inputs!r}: choose one of {', '.join(INPUTS)}")
        if motion_steps < 1:
            raise ValueError(f"motion_steps must be >= 1, got {motion_steps}")
        if flow_pool < 1:
            raise ValueError(f"flow_pool must be >= 1, got {flow_pool}")
        self.head, self.inputs, self.motion_steps, self.flow_pool = head, inputs, motion_steps, flow_pool
        self.turning = turning
        options = dict(frozen=freeze_backbone, channels=channels, grid=grid, keypoints=keypoints,
                       feature_size=feature_size)
        self.streams = nn.ModuleDict({name: make_backbone(backbone, **options, **self._stream_options(name))
                                      for name in inputs.split("+")})
        self.dropout = nn.Dropout(dropout)
        size = sum(stream.output_size for stream in self.streams.values())
        self.encoder = LSTMEncoder(input_size=size, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout)
        self.output = nn.Linear(self.encoder.output_size, num_classes)

    def _stream_options(self, name: str) -> dict:
        """What a stream's encoder reads besides the defaults: flow has 2 channels (4 with turning) and max-pools,
        a motion stream motion_steps times its channels."""
        if name == "rgb":
            return {}
        if name == "flow":
            return {"in_channels": (4 if self.turning else 2) * self.motion_steps, "peaks": True}
        return {"in_channels": 3 * self.motion_steps}

    @property
    def reads_flow(self) -> bool:
        return "flow" in self.streams

    def view(self, name: str, frames: Tensor, flow: Optional[Tensor] = None) -> Tensor:
        """frames (B, T, C, H, W) -> what stream `name` reads, (B, T, C', H', W'); flow (B, T, 2, H, W), if given,
        is the flow stream's motion instead of scene_flow(frames)."""
        if name == "rgb":
            return frames
        motion = flow.float() if name == "flow" and flow is not None else MOTION[name](frames)
        if name == "flow" and self.flow_pool > 1:  # (before stacking: a third of the pooling)
            B, T = motion.shape[:2]
            pooled = F.avg_pool2d(motion.flatten(0, 1), self.flow_pool)  # (B * T, 2, H / pool, W / pool)
            motion = pooled.view(B, T, *pooled.shape[1:])
        if name == "flow" and self.turning:
            motion = with_turning(motion)
        return stacked(motion, self.motion_steps) if self.motion_steps > 1 else motion

    def frame_features(self, frames: Tensor, flow: Optional[Tensor] = None) -> dict[str, Tensor]:
        """frames (B, T, C, H, W) -> each stream's features (B, T, F_stream), every frame through it at once."""
        B, T = frames.shape[:2]
        views = {name: self.view(name, frames, flow) for name in self.streams}
        return {name: stream(views[name].flatten(0, 1)).view(B, T, -1) for name, stream in self.streams.items()}

    def forward(self, frames: Tensor, flow: Optional[Tensor] = None) -> Tensor:
        """frames (B, T, C, H, W) normalised, flow (B, T, 2, H, W) or None -> logits (B, K)."""
        T = frames.shape[1]
        features = torch.cat(list(self.frame_features(frames, flow).values()), dim=-1)  # (B, T, F): side by side
        encoded = self.encoder(features)  # dropout on its inputs is the encoder's
        if self.head == "final":
            return self.output(self.dropout(encoded.state[0][-1]))  # (B, K): the top layer's last hidden state
        log_probs = self.output(self.dropout(encoded.outputs)).log_softmax(dim=-1)  # (B, T, K)
        return torch.logsumexp(log_probs, dim=1) - math.log(T)  # (B, K): log of the mean distribution


class Ensemble(nn.Module):
    """members LRCNs side by side, each from its own random initialisation, trained on the same batches, each
    with its own loss: a deep ensemble (Lakshminarayanan et al. 2017). On a small set, one network's test
    accuracy moves by a few points with its initialisation; the members' mean probability is better calibrated
    and, on average, more accurate (user-style cluttered set in the README: test loss 0.32-0.38 against
    0.40-0.47 for one network, accuracy about 2 points higher). Costs members times the compute.

    frames (B, T, C, H, W), flow or None -> each member's logits (M, B, K); `combined` turns them into the
    ensemble's prediction.
    """

    def __init__(self, members: int = 1, **options):
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.members = nn.ModuleList(LRCN(**options) for _ in range(members))

    @property
    def reads_flow(self) -> bool:
        return self.members[0].reads_flow

    def forward(self, frames: Tensor, flow: Optional[Tensor] = None) -> Tensor:
        return torch.stack([member(frames, flow) for member in self.members])

    @staticmethod
    def combined(member_logits: Tensor) -> Tensor:
        """(M, B, K) -> (B, K): the log of the members' mean probabilities (one member: its log-softmax)."""
        return torch.logsumexp(member_logits.log_softmax(dim=-1), dim=0) - math.log(len(member_logits))
