"""LSTM encoder over token or continuous-feature sequences, packed by length."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

State = tuple[Tensor, Tensor]  # (h, c), each (L*D, B, H)


class EncoderOutput(NamedTuple):
    outputs: Tensor  # (B, T, D*H), zero past each length
    lengths: Tensor  # (B,)
    state: State  # final (h, c) of every layer and direction


class LSTMEncoder(nn.Module):
    """Stacked, optionally bidirectional LSTM.

    Give ``vocab_size`` for token input (B, T) or ``input_size`` for features (B, T, F).
    Padding never reaches the LSTM: sequences are packed by their lengths, so final states are
    those of each sequence's last real step.
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        vocab_size: Optional[int] = None,
        embedding_dim: Optional[int] = None,
        input_size: Optional[int] = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ):
        super().__init__()
        if (vocab_size is None) == (input_size is None):
            raise ValueError("LSTMEncoder takes exactly one of vocab_size (tokens) or input_size (features)")
        if vocab_size is not None:
            embedding_dim = embedding_dim or hidden_size
            self.embedding: Optional[nn.Embedding] = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
            input_size = embedding_dim
        else:
            self.embedding = None
        self.input_dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, inputs: Tensor, lengths: Optional[Tensor] = None, state: Optional[State] = None) -> EncoderOutput:
        """inputs (B, T) or (B, T, F); lengths (B,), all T when None; state to continue from."""
        x = self.embedding(inputs) if self.embedding is not None else inputs  # (B, T, E)
        x = self.input_dropout(x)
        B, T = x.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
            outputs, state = self.lstm(x, state)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, state = self.lstm(packed, state)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
        return EncoderOutput(outputs, lengths, state)
