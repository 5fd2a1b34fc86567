"""The LSTM written literally from its equations: Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
2000, in the notation of Olah, "Understanding LSTM Networks" (2015).

This is the readable reference, not what trains: training uses the fused ``torch.nn.LSTM``.
``tests/test_core.py`` loads the same weights into both and checks that outputs and gradients agree.

    f_t  = sigmoid(W_f · [h_{t-1}, x_t] + b_f)      forget gate
    i_t  = sigmoid(W_i · [h_{t-1}, x_t] + b_i)      input gate
    C~_t = tanh(W_C · [h_{t-1}, x_t] + b_C)         candidate cell state
    C_t  = f_t * C_{t-1} + i_t * C~_t               cell state
    o_t  = sigmoid(W_o · [h_{t-1}, x_t] + b_o)      output gate
    h_t  = o_t * tanh(C_t)                          hidden state
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, Tensor]  # (h, c), each (B, H)

# nn.LSTM stacks its four gates in this order along the first axis of its weights.
FUSED_GATE_ORDER = ("input", "forget", "candidate", "output")


class LSTMCell(nn.Module):
    """One LSTM step. Shapes: x (B, I), h and c (B, H)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        concat = hidden_size + input_size  # [h_{t-1}, x_t]
        self.forget = nn.Linear(concat, hidden_size)  # W_f, b_f
        self.input = nn.Linear(concat, hidden_size)  # W_i, b_i
        self.candidate = nn.Linear(concat, hidden_size)  # W_C, b_C
        self.output = nn.Linear(concat, hidden_size)  # W_o, b_o

    def forward(self, x: Tensor, state: State) -> State:
        h_prev, c_prev = state
        hx = torch.cat([h_prev, x], dim=-1)  # (B, H + I)
        f = torch.sigmoid(self.forget(hx))
        i = torch.sigmoid(self.input(hx))
        c_tilde = torch.tanh(self.candidate(hx))
        c = f * c_prev + i * c_tilde
        o = torch.sigmoid(self.output(hx))
        h = o * torch.tanh(c)
        return h, c

    @torch.no_grad()
    def copy_from_fused(self, lstm: nn.LSTM, layer: int, reverse: bool = False) -> None:
        """Take the weights of one layer and direction of a fused ``nn.LSTM``.

        nn.LSTM keeps W_ih (4H, I), W_hh (4H, H) and two biases; our W over [h, x] is [W_hh | W_ih]
        and our bias is b_ih + b_hh.
        """
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        w_ih, w_hh = getattr(lstm, "weight_ih" + suffix), getattr(lstm, "weight_hh" + suffix)
        b_ih, b_hh = getattr(lstm, "bias_ih" + suffix), getattr(lstm, "bias_hh" + suffix)
        for k, gate in enumerate(FUSED_GATE_ORDER):
            rows = slice(k * self.hidden_size, (k + 1) * self.hidden_size)
            linear: nn.Linear = getattr(self, gate)
            linear.weight.copy_(torch.cat([w_hh[rows], w_ih[rows]], dim=1))
            linear.bias.copy_(b_ih[rows] + b_hh[rows])


class ReferenceLSTM(nn.Module):
    """A stack of reference cells looped over time, one sequence at a time: slow and obvious.

    Same interface as a batch-first ``nn.LSTM`` given lengths:
    inputs (B, T, I), lengths (B,) -> outputs (B, T, D*H) zero-padded, (h_n, c_n) each (L*D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            LSTMCell(input_size if layer == 0 else hidden_size * self.directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )

    @classmethod
    def from_fused(cls, lstm: nn.LSTM) -> "ReferenceLSTM":
        ref = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bidirectional)
        for layer in range(ref.num_layers):
            for direction in range(ref.directions):
                ref.cells[layer * ref.directions + direction].copy_from_fused(lstm, layer, reverse=direction == 1)
        return ref

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        B, T, _ = inputs.shape
        outputs, h_n, c_n = [], [], []
        for b in range(B):
            seq = inputs[b, : int(lengths[b])]  # (t, I)
            finals = []
            for layer in range(self.num_layers):
                per_direction = []
                for direction in range(self.directions):
                    cell = self.cells[layer * self.directions + direction]
                    steps = seq.flip(0) if direction == 1 else seq
                    h = c = seq.new_zeros(1, self.hidden_size)
                    hs = []
                    for x in steps:
                        h, c = cell(x[None], (h, c))
                        hs.append(h[0])
                    out = torch.stack(hs)  # (t, H)
                    per_direction.append(out.flip(0) if direction == 1 else out)
                    finals.append((h[0], c[0]))
                seq = torch.cat(per_direction, dim=-1)  # (t, D*H): the next layer's input
            outputs.append(nn.functional.pad(seq, (0, 0, 0, T - seq.shape[0])))
            h_n.append(torch.stack([h for h, _ in finals]))
            c_n.append(torch.stack([c for _, c in finals]))
        return torch.stack(outputs), (torch.stack(h_n, dim=1), torch.stack(c_n, dim=1))
