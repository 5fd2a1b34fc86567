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


def initialise(lstm: nn.LSTM, head: nn.Linear) -> None:
    """Keras' defaults, which learn this task faster than torch's uniform ones: Glorot-uniform input weights,
    orthogonal recurrent weights per gate, zero biases but a forget-gate bias of 1 (Jozefowicz et al. 2015),
    so that the cell remembers from the first step. torch's gate order is input, forget, cell, output."""
    H = lstm.hidden_size
    for name, weight in lstm.named_parameters():
        if name.startswith("weight_ih"):
            for gate in weight.data.split(H):  # Keras draws one (input, 4H) kernel; per gate is within a hair
                nn.init.xavier_uniform_(gate)
        elif name.startswith("weight_hh"):
            for gate in weight.data.split(H):
                nn.init.orthogonal_(gate)
        elif name.startswith("bias_ih"):
            nn.init.zeros_(weight)
            weight.data[H : 2 * H] = 1.0
        else:  # bias_hh: torch adds it to bias_ih; Keras has one bias
            nn.init.zeros_(weight)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)


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
        self.encoder = LSTMEncoder(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout)
        self.encoder.input_dropout = nn.Identity()  # dropping raw values of a series would corrupt it, not regularise
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, horizon if strategy == "direct" else 1)
        initialise(self.encoder.lstm, self.head)

    def forward(self, inputs: Tensor, steps: int | None = None) -> Tensor:
        """inputs (B, T, C) scaled -> (B, steps) scaled targets; steps is H unless a recursive net is asked for more."""
        anchor = inputs[:, -1:, :] if self.relative else torch.zeros_like(inputs[:, -1:, :])  # (B, 1, C)
        state = self.encoder(inputs - anchor).state  # (h, c), each (L, B, D)
        if self.strategy == "direct":
            out = self.head(self.dropout(state[0][-1]))  # (B, H)
        else:
            outs = []
            for k in range(steps or self.horizon):  # O(1) per step: the LSTM continues from its state
                outs.append(self.head(self.dropout(state[0][-1])))  # (B, 1)
                if k + 1 < (steps or self.horizon):
                    state = self.encoder(outs[-1].unsqueeze(1), state=state).state  # feed (B, 1, 1) back
            out = torch.cat(outs, dim=1)  # (B, steps)
        return out + anchor[:, 0, :1]
