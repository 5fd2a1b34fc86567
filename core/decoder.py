"""LSTM decoder: teacher-forced ``forward`` and incremental ``step``, optionally attending to memory."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from core.attention import Attention, Memory
from core.fused import LSTM
from core.init import initialise_lstm


class DecoderState(NamedTuple):
    h: Tensor  # (L, B, H)
    c: Tensor  # (L, B, H)
    feed: Optional[Tensor] = None  # (B, H) last attentional vector, carried when input feeding


class DecoderOutput(NamedTuple):
    logits: Tensor  # (B, T, V)
    state: DecoderState
    attention: Optional[Tensor]  # (B, T, S) weights over memory, None without attention


class LSTMDecoder(nn.Module):
    """An LSTM language model over tokens that may attend to encoder memory.

    Without attention it is a plain LSTM LM (the music task). With attention it follows Luong et al.
    2015: h~_t = tanh(W_c [context_t; h_t]) is what predicts, and with ``input_feeding`` h~_{t-1} is
    fed into step t next to the token embedding, so attention decisions can see earlier ones.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        hidden_size: int,
        embedding_dim: Optional[int] = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        attention: Optional[str] = None,
        memory_size: Optional[int] = None,
        input_feeding: bool = False,
        tie_embeddings: bool = False,
        padding_idx: int = 0,
        init: str = "torch",
    ):
        super().__init__()
        embedding_dim = embedding_dim or hidden_size
        if input_feeding and attention is None:
            raise ValueError("input_feeding needs attention: it feeds the previous attentional vector")
        self.hidden_size, self.num_layers, self.input_feeding = hidden_size, num_layers, input_feeding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.lstm = LSTM(
            embedding_dim + (hidden_size if input_feeding else 0),
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        initialise_lstm(self.lstm, init)  # "torch" or "keras" (core/init.py)
        self.attention: Optional[Attention] = None
        if attention is not None:
            self.attention = Attention(attention, hidden_size, memory_size or hidden_size)
            self.combine = nn.Linear((memory_size or hidden_size) + hidden_size, hidden_size)
        # Tying predicts with the embedding matrix itself (Press & Wolf 2017); sizes must agree.
        self.bottleneck = nn.Linear(hidden_size, embedding_dim) if tie_embeddings and embedding_dim != hidden_size else None
        self.output = nn.Linear(embedding_dim if tie_embeddings else hidden_size, vocab_size)
        if tie_embeddings:
            self.output.weight = self.embedding.weight

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> DecoderState:
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        feed = torch.zeros(batch_size, self.hidden_size, device=device) if self.input_feeding else None
        return DecoderState(zeros, zeros.clone(), feed)

    def forward(self, tokens: Tensor, state: Optional[DecoderState] = None, memory: Optional[Memory] = None) -> DecoderOutput:
        """tokens (B, T) -> logits (B, T, V), the state after the last token, attention weights."""
        if (self.attention is None) != (memory is None):
            raise ValueError("pass memory exactly when the decoder was built with attention")
        B, T = tokens.shape
        state = state if state is not None else self.initial_state(B, tokens.device)
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        if self.input_feeding:
            # Step t needs h~_{t-1}, so this path runs step by step.
            h, c, feed = state
            outputs, weights = [], []
            for t in range(T):
                x = torch.cat([embedded[:, t], feed], dim=-1)[:, None]  # (B, 1, E + H)
                out, (h, c) = self.lstm(x, (h, c))
                out, w = self._attend(out, memory)
                feed = out[:, 0]
                outputs.append(out)
                weights.append(w)
            out, attention = torch.cat(outputs, 1), torch.cat(weights, 1)
            state = DecoderState(h, c, feed)
        else:
            out, (h, c) = self.lstm(embedded, (state.h, state.c))  # (B, T, H): one fused call
            out, attention = self._attend(out, memory) if self.attention is not None else (out, None)
            state = DecoderState(h, c, None)
        out = self.dropout(out)
        if self.bottleneck is not None:
            out = self.bottleneck(out)
        return DecoderOutput(self.output(out), state, attention)

    def _attend(self, out: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        context, weights = self.attention(out, memory)  # (B, T, M), (B, T, S)
        return torch.tanh(self.combine(torch.cat([context, out], dim=-1))), weights

    def step(self, token: Tensor, state: Optional[DecoderState], memory: Optional[Memory] = None) -> tuple[Tensor, DecoderState]:
        """One token per sequence, token (B,) -> logits (B, V) and the new state: O(1) per token."""
        logits, state, _ = self.forward(token[:, None], state, memory)
        return logits[:, 0], state

    @staticmethod
    def reorder_state(state: DecoderState, index: Tensor) -> DecoderState:
        """Select or repeat batch entries of a state (beam search)."""
        feed = state.feed.index_select(0, index) if state.feed is not None else None
        return DecoderState(state.h.index_select(1, index), state.c.index_select(1, index), feed)
