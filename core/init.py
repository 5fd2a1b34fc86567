"""How an nn.LSTM's weights start: torch's default, or Keras' (which some tasks learn faster from)."""
from __future__ import annotations

from torch import nn

INITS = ("torch", "keras")


def initialise_lstm(lstm: nn.LSTM, init: str = "torch") -> None:
    """torch: leave nn.LSTM's uniform(-1/sqrt(H), 1/sqrt(H)) as it is.

    keras: Glorot-uniform input weights, orthogonal recurrent weights per gate, zero biases but a forget-gate bias
    of 1 (Jozefowicz et al. 2015), so the cell remembers from the first step. torch's gate order is input, forget,
    cell, output; Keras draws one (input, 4H) kernel where this draws per gate, which is within a hair.
    """
    if init not in INITS:
        raise ValueError(f"Unsupported init {init!r}: choose one of {', '.join(INITS)}")
    if init == "torch":
        return
    H = lstm.hidden_size
    for name, weight in lstm.named_parameters():
        if name.startswith("weight_ih"):
            for gate in weight.data.split(H):
                nn.init.xavier_uniform_(gate)
        elif name.startswith("weight_hh"):
            for gate in weight.data.split(H):
                nn.init.orthogonal_(gate)
        elif name.startswith("bias_ih"):
            nn.init.zeros_(weight)
            weight.data[H : 2 * H] = 1.0
        else:  # bias_hh: torch adds it to bias_ih; Keras has one bias
            nn.init.zeros_(weight)
