"""Attention over encoder memory (Luong et al. 2015 dot and general, Bahdanau et al. 2015 additive)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

ATTENTION_KINDS = ("dot", "general", "additive")


class Memory(NamedTuple):
    """What a decoder attends to: encoder outputs and which of their positions are real."""

    outputs: Tensor  # (B, S, M)
    mask: Tensor  # (B, S) bool, True at real positions, False at padding

    @classmethod
    def from_lengths(cls, outputs: Tensor, lengths: Tensor) -> "Memory":
        positions = torch.arange(outputs.shape[1], device=outputs.device)
        return cls(outputs, positions[None, :] < lengths.to(outputs.device)[:, None])

    def index_select(self, index: Tensor) -> "Memory":
        """Reorder or repeat the batch, as beam search does."""
        return Memory(self.outputs.index_select(0, index), self.mask.index_select(0, index))


class Attention(nn.Module):
    """Scores every memory position against each query; padding gets zero weight.

    query (B, Tq, Q), memory (B, S, M) -> context (B, Tq, M), weights (B, Tq, S).
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, hidden_size: int | None = None):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"Unsupported attention {kind!r}: choose one of {', '.join(ATTENTION_KINDS)}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs query size == memory size, got {query_size} and {memory_size}")
        self.kind = kind
        if kind == "general":
            self.query_proj = nn.Linear(query_size, memory_size, bias=False)
        elif kind == "additive":
            hidden_size = hidden_size or query_size
            self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
            self.memory_proj = nn.Linear(memory_size, hidden_size)
            self.v = nn.Linear(hidden_size, 1, bias=False)

    def score(self, query: Tensor, memory: Tensor) -> Tensor:
        if self.kind == "dot":
            return query @ memory.transpose(1, 2)  # (B, Tq, S)
        if self.kind == "general":
            return self.query_proj(query) @ memory.transpose(1, 2)
        q = self.query_proj(query)[:, :, None]  # (B, Tq, 1, A)
        m = self.memory_proj(memory)[:, None]  # (B, 1, S, A)
        return self.v(torch.tanh(q + m)).squeeze(-1)  # (B, Tq, S)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        scores = self.score(query, memory.outputs)
        scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, Tq, S)
        return weights @ memory.outputs, weights
