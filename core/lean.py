"""LSTMDecoder.step for generation, laid out for batch 1.

At batch 1 a decoder step is a few matrix-vector products (~1 M multiply-adds for 2 x 256), and what it
costs is the dispatch around them: module calls, a (B, 1, ·) sequence round trip through nn.LSTM, and
matrix-vector products on nn.LSTM's (4H, in) weight layout, which this CPU reads half as fast as (in, 4H).
`LeanStep` takes a snapshot of the weights once per generation call (about a millisecond) and then steps
with a handful of tensor operations per layer:

- layer 0's input projection of every token is one row of a (V, 4H) table, when that table is small;
- each layer's gates are one `addmm` per weight matrix, on weights stored (in, 4H);
- the cell is five elementwise operations after one sigmoid over all four gates: the candidate's weights are
  stored doubled, so its sigmoid gives tanh through tanh(x) = 2 sigmoid(2x) - 1;
- the state between steps is a tuple of per-layer tensors (LeanState), never stacked and split again.

It has no gradients and its own copy of the weights: `for_generation` rebuilds it when they change. Tested equal to LSTMDecoder.forward one token at a time.
"""
from __future__ import annotations

import copy
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from core.attention import Memory
from core.decoder import DecoderState, LSTMDecoder

ENABLED = True  # bench/generation.py turns it off to time the module-by-module step against this one
TOKEN_TABLE_LIMIT = 4_000_000  # entries of the (V, 4H) table: 16 MB in float32; larger vocabularies embed per step


class LeanState(NamedTuple):
    """A decoder state as LeanStep keeps it: one (B, H) tensor per layer."""

    h: tuple[Tensor, ...]
    c: tuple[Tensor, ...]
    feed: Optional[Tensor] = None  # (B, H), when input feeding

    def stacked(self) -> DecoderState:
        """The same state as LSTMDecoder keeps it, (L, B, H)."""
        return DecoderState(torch.stack(self.h), torch.stack(self.c), self.feed)


def _doubled_candidate(weight: Tensor) -> Tensor:
    """(..., 4H) gate weights or bias, gate order i, f, g, o, with the candidate's (g) block times 2."""
    H = weight.shape[-1] // 4
    weight = weight.clone()
    weight[..., 2 * H:3 * H] *= 2
    return weight


class LeanStep:
    """decoder.step(token, state, memory) -> (logits (B, V), state), with a frozen copy of the weights."""

    def __init__(self, decoder: LSTMDecoder):
        self.decoder = decoder
        self.input_feeding, self.num_layers = decoder.input_feeding, decoder.num_layers
        H = decoder.hidden_size
        weights = [w.detach() for w in decoder.lstm._flat_weights]  # per layer: w_ih, w_hh, b_ih, b_hh
        self.w_ih = [_doubled_candidate(weights[4 * k].t()).contiguous() for k in range(self.num_layers)]  # (in, 4H)
        self.w_hh = [_doubled_candidate(weights[4 * k + 1].t()).contiguous() for k in range(self.num_layers)]  # (H, 4H)
        self.bias = [_doubled_candidate(weights[4 * k + 2] + weights[4 * k + 3]) for k in range(self.num_layers)]
        embedding = decoder.embedding.weight.detach()  # (V, E)
        E = embedding.shape[1]
        self.embedding, self.token_weight = embedding, self.w_ih[0][:E]  # (E, 4H): the token's share
        self.feed_weight = self.w_ih[0][E:] if self.input_feeding else None  # (H, 4H): the fed vector's share
        self.token_gates = None
        if embedding.shape[0] * 4 * H <= TOKEN_TABLE_LIMIT:
            self.token_gates = torch.addmm(self.bias[0], embedding, self.token_weight)  # (V, 4H)
        self._memory = None  # the memory the attention keys below were made for
        if decoder.attention is not None:
            self.combine_weight = decoder.combine.weight.detach().t().contiguous()  # (M + H, H)
            self.combine_bias = decoder.combine.bias.detach()
        self.bottleneck = None
        if decoder.bottleneck is not None:  # (H, E) and (E,): a module call costs more than its product here
            self.bottleneck = (decoder.bottleneck.weight.detach().t().contiguous(), decoder.bottleneck.bias.detach())
        self.output_weight = decoder.output.weight.detach().t().contiguous()  # (H or E, V)
        self.output_bias = decoder.output.bias.detach()

    def banning(self, tokens: Tensor) -> "LeanStep":
        """This step with `tokens` (indices) never chosen: their output bias is -inf, so their logits are -inf
        without a masking operation every step."""
        banned = copy.copy(self)
        banned.output_bias = self.output_bias.index_fill(0, tokens, float("-inf"))
        return banned

    @staticmethod
    def _cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = gates.sigmoid().chunk(4, dim=1)  # g is sigmoid(2x) of the candidate's x
        c = torch.addcmul(f * c - i, i, g, value=2.0)  # f c + i tanh(x), with tanh(x) = 2 g - 1
        return o * c.tanh(), c

    def step(self, token: Tensor, state, memory: Optional[Memory] = None) -> tuple[Tensor, LeanState]:
        """token (B,), state (None, a DecoderState or the LeanState the last step gave) -> logits (B, V), LeanState."""
        decoder = self.decoder
        if state is None:
            state = decoder.initial_state(token.shape[0], token.device)
        if isinstance(state, DecoderState):
            state = LeanState(state.h.unbind(0), state.c.unbind(0), state.feed)
        if self.token_gates is not None:
            gates = self.token_gates.index_select(0, token)  # (B, 4H); cheaper to call than indexing
        else:
            gates = torch.addmm(self.bias[0], self.embedding[token], self.token_weight)
        if self.input_feeding:
            gates = torch.addmm(gates, state.feed, self.feed_weight)
        hs, cs = [], []
        x = None
        for layer in range(self.num_layers):
            if layer > 0:
                gates = torch.addmm(self.bias[layer], x, self.w_ih[layer])
            x, c = self._cell(torch.addmm(gates, state.h[layer], self.w_hh[layer]), state.c[layer])
            hs.append(x)
            cs.append(c)
        feed = None
        if decoder.attention is not None:
            x = self._attend(x, memory)  # (B, H): the attentional vector
            feed = x if self.input_feeding else None
        if self.bottleneck is not None:
            x = torch.addmm(self.bottleneck[1], x, self.bottleneck[0])
        logits = torch.addmm(self.output_bias, x, self.output_weight)
        return logits, LeanState(tuple(hs), tuple(cs), feed)

    def _attend(self, query: Tensor, memory: Memory) -> Tensor:
        """query (B, H) -> tanh(W_c [context; query]) (B, H), as LSTMDecoder._attend. For dot and general
        attention the keys (memory, or memory projected by W_q^T) and the padding mask, as a bias of 0 or -inf,
        are made once per memory, so a step is one batched multiply-add, a softmax and a multiply."""
        attention = self.decoder.attention
        if attention.kind == "additive":
            return self.decoder._attend(query[:, None], memory)[0][:, 0]
        if memory is not self._memory:
            keys = memory.outputs if attention.kind == "dot" else memory.outputs @ attention.query_proj.weight.detach()
            self._keys = keys.transpose(1, 2)  # (B, Q, S): score = query . key
            self._mask_bias = torch.zeros(memory.mask.shape, device=query.device).masked_fill(~memory.mask, float("-inf"))[:, None]
            self._memory = memory
        scores = torch.baddbmm(self._mask_bias, query[:, None], self._keys)  # (B, 1, S)
        context = torch.bmm(scores.softmax(dim=-1), memory.outputs)[:, 0]  # (B, M)
        return torch.addmm(self.combine_bias, torch.cat([context, query], dim=-1), self.combine_weight).tanh()

    @staticmethod
    def reorder_state(state, index: Tensor):
        """Select or repeat batch entries of a DecoderState or LeanState (beam search)."""
        if isinstance(state, DecoderState):
            return LSTMDecoder.reorder_state(state, index)
        feed = state.feed.index_select(0, index) if state.feed is not None else None
        return LeanState(tuple(h.index_select(0, index) for h in state.h),
                         tuple(c.index_select(0, index) for c in state.c), feed)


def for_generation(decoder):
    """What generation steps with: a LeanStep for an LSTMDecoder in eval mode with autograd off (the
    normal case inside generate()), else the decoder itself (training-time decoding keeps its graph).

    The LeanStep is kept on the decoder and reused while its weights are the same tensors, unchanged: an
    optimiser step or load_state_dict bumps a tensor's version, a move to another device changes its storage.
    (Building it costs milliseconds, as much as translating a short sentence.)
    """
    if not (ENABLED and isinstance(decoder, LSTMDecoder) and not decoder.training and not torch.is_grad_enabled()):
        return decoder
    weights = tuple((p.data_ptr(), p._version) for p in decoder.parameters())
    cached = decoder.__dict__.get("_lean_step")
    if cached is None or cached[0] != weights:
        cached = (weights, LeanStep(decoder))
        decoder.__dict__["_lean_step"] = cached  # a plain attribute: not a parameter, buffer or submodule
    return cached[1]
