"""The forecaster: the core LSTMEncoder over a window, a linear output. Plain nn.Module, no Lightning.

Shapes: B windows, T timesteps, C inputs per step (the target first), H horizon, D hidden size.
With the defaults this is exactly the seed's Keras model: LSTM(50) -> Dense(1).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from core.encoder import LSTMEncoder

STRATEGIES = ("direct", "recursive")


class ForecastNet(nn.Module):
    """Window (B, T, C) -> the next H target values (B, H), all in the scaled space.

    Args:
        input_size: C, the target plus extra features.
        hidden_size, num_layers: the LSTM.
        dropout: between LSTM layers and before the output (never on the inputs: the series is the signal).
        horizon: H, steps forecast at once.
        strategy: direct (one linear output per step ahead) or recursive (a one-step output whose
            prediction is fed back as the next input, H times; the target must be the only input).
        relative: read the window relative to its last value and predict the change from it. A rising
            series (CO2) leaves the range seen in training; its changes stay in range.
    """

    def __init__(self, *, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 horizon: int = 1, strategy: Literal["direct", "recursive"] = "direct", relative: bool = True):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"Unsupported strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if strategy == "recursive" and input_size != 1:
            raise ValueError(f"the recursive strategy feeds each prediction back as the next input, so the target must "
                             f"be the only input (input_size 1, got {input_size}): drop the extra features or use direct")
        self.horizon, self.strategy, self.relative = horizon, strategy, relative
        # Keras' initialisation learns this task faster than torch's; dropping raw values of a series would corrupt
        # it, not regularise, so no dropout on the inputs.
        self.encoder = LSTMEncoder(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                                   input_dropout=0.0, init="keras")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, horizon if strategy == "direct" else 1)
        nn.init.xavier_uniform_(self.head.weight)  # Keras' Dense defaults, like the LSTM's
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: Tensor, steps: int | None = None) -> Tensor:
        """inputs (B, T, C) scaled -> (B, steps) scaled targets; steps is H unless a recursive net is asked for more."""
        anchor = inputs[:, -1:, :] if self.relative else torch.zeros_like(inputs[:, -1:, :])  # (B, 1, C)
        encoded = self.encoder(inputs - anchor)
        last, state = encoded.outputs[:, -1], encoded.state  # (B, D): the top layer after the window's last step
        if self.strategy == "direct":
            out = self.head(self.dropout(last))  # (B, H)
        else:
            outs = []
            for k in range(steps or self.horizon):  # O(1) per step: the LSTM continues from its state
                outs.append(self.head(self.dropout(last)))  # (B, 1)
                if k + 1 < (steps or self.horizon):
                    last, state = self.encoder.step(outs[-1], state)  # the prediction (B, 1) is the next input
            out = torch.cat(outs, dim=1)  # (B, steps)
        return out + anchor[:, 0, :1]
